"""The project namespace, enforced in one place: a store's sessions belong to one project.

Every ORM statement a session runs (select, update, delete, `Session.get`) gets the criterion
`project == <this project>` on each project-owned table it touches, and every project-owned
record it flushes is stamped with the project (one stamped with another is refused). So no
query written anywhere in mlcrew, now or later, can see or change another project's records,
without each call site having to remember a filter.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

from mlcrew.errors import StoreError
from mlcrew.store.models import ProjectOwned

PROJECT_KEY = "mlcrew.project"


def project_sessions(engine: Any, project: str) -> sessionmaker[Session]:
    """A session factory whose sessions see and write only `project`'s records."""
    factory = sessionmaker(engine, expire_on_commit=False, info={PROJECT_KEY: project})

    @event.listens_for(factory, "do_orm_execute")
    def _filter(state: ORMExecuteState) -> None:
        if state.is_select or state.is_update or state.is_delete:
            name = state.session.info[PROJECT_KEY]
            state.statement = state.statement.options(
                with_loader_criteria(
                    ProjectOwned,
                    lambda cls: cls.project == name,
                    include_aliases=True,
                    track_closure_variables=True,
                )
            )

    @event.listens_for(factory, "before_flush")
    def _stamp(session: Session, _context: Any, _instances: Any) -> None:
        name = session.info[PROJECT_KEY]
        for obj in session.new:
            if isinstance(obj, ProjectOwned):
                if obj.project is None:
                    obj.project = name
                elif obj.project != name:
                    raise StoreError(
                        f"refusing to write a record of project {obj.project!r} through the "
                        f"store of project {name!r}"
                    )

    return factory
