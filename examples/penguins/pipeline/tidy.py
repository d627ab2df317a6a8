"""A Python transform of the penguins example: derived measurements in Arrow.

mlcrew calls `tidy` with the `measured` table (the parameter's name says which) in a child
process and keeps the table it returns as the `tidy` dataset.
"""

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.units import grams_to_kg


def tidy(measured: pa.Table) -> pa.Table:
    mass = measured.column("body_mass_g")
    ratio = pc.divide(
        pc.cast(measured.column("bill_length_mm"), pa.float64()),
        pc.cast(measured.column("bill_depth_mm"), pa.float64()),
    )
    # Field seasons run November to January: eggs of January belong to the season before.
    year = pc.year(measured.column("egg_date"))
    january = pc.equal(pc.month(measured.column("egg_date")), 1)
    season = pc.if_else(january, pc.subtract(year, 1), year)
    return (
        measured.append_column("body_mass_kg", grams_to_kg(mass))
        .append_column("bill_ratio", pc.round(ratio, 4))
        .append_column("season", season)
        .drop_columns(["body_mass_g"])
    )
