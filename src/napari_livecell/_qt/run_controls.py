"""What every widget with a long run shares: one worker at a time, Run/Cancel, errors, the gc hold."""

from __future__ import annotations

from typing import Any

from napari_livecell._qt.gc_hold import hold_collector, release_collector


def notify_error(status: Any, message: str) -> None:
    """Show a user's problem in a widget's status line and as a napari notification."""
    from napari.utils.notifications import show_warning

    status.value = message
    show_warning(message)


class RunControls:
    """The Run and Cancel buttons, status line and worker of one widget.

    :meth:`begin` starts a thread worker (errors it raises become a one-line
    notification), holds the garbage collector for the run's length (see
    :mod:`napari_livecell._qt.gc_hold`) and disables Run; :meth:`end` undoes
    all of it. A widget calls :meth:`end` when its result is in place, which
    may be later than the worker's ``finished``.
    """

    def __init__(self, run_button: Any, cancel_button: Any, status: Any, action: str) -> None:
        self._run = run_button
        self._cancel = cancel_button
        self.status = status
        self._action = action
        self.worker: Any = None
        self.busy = False
        self._holding = False

    def notify_error(self, message: str) -> None:
        """Report a problem in the status line and as a napari notification."""
        notify_error(self.status, message)

    def begin(self, worker: Any, message: str) -> Any:
        """Start ``worker``; the widget is busy until :meth:`end`."""
        worker.errored.connect(lambda error: self.notify_error(f"{self._action} failed: {error}"))
        hold_collector()
        self._holding = True
        self.worker = worker
        self.busy = True
        self._run.enabled = False
        self._cancel.enabled = True
        self.status.value = message
        worker.start()
        return worker

    def end(self) -> None:
        """The run is over (finished, failed or cancelled): Run is enabled again."""
        if self._holding:
            self._holding = False
            release_collector()
        self.busy = False
        self._run.enabled = True
        self._cancel.enabled = False


class BackgroundRun:
    """``worker`` and ``busy`` of a widget whose runs go through a :class:`RunControls` (``_controls``)."""

    _controls: RunControls

    @property
    def worker(self) -> Any:
        """The running (or last) thread worker, for tests and scripts."""
        return self._controls.worker

    @property
    def busy(self) -> bool:
        """True from the start of a run until its result is in place (or it failed or was cancelled)."""
        return self._controls.busy
