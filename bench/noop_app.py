"""The app the benchmarks run: one task that does nothing, so only shoal's cost is measured."""

from shoal import App

app = App()


@app.task(queue="bench")
async def noop() -> None:
    """Nothing: the time per task is all queue overhead."""
