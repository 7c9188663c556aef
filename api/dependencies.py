"""What routes receive besides the caller (`api.auth`): the unit of work, the settings, the metrics.

Built once in `create_app` and kept on the app's state; nothing here is built at import time.
A dependency that neither blocks nor waits is `async def`: FastAPI runs a plain `def` in a worker thread,
a hop that costs more than the dependency itself.
"""

from typing import Annotated

from fastapi import Depends, Request

from api.metrics import MetricsDep
from api.settings import Settings
from ledger.unit_of_work import UnitOfWork


async def get_unit_of_work(request: Request) -> UnitOfWork:
    unit_of_work: UnitOfWork = request.app.state.unit_of_work
    return unit_of_work


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

__all__ = ["MetricsDep", "SettingsDep", "UnitOfWorkDep"]
