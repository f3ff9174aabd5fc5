"""The explorer's plot: plotly's ``FigureWidget`` with its 5 MB JavaScript bundle sent by message, not kept in the
widget's state.

anywidget keeps a widget's code in its ``_esm`` trait, and plotly's is its whole bundle (plotly.js and the widget,
4.96 MB): every explorer carried it, so a notebook whose widget state is saved (``nbconvert --execute``, or
JupyterLab's "save widget state") grew by 5 MB per explorer. Here ``_esm`` is a loader of about 2 kB. It asks the
kernel for the bundle (one custom message, the bundle as a binary buffer, once per page: later plots reuse the
module), imports it, asks the kernel to bring the figure's full state up to date (edits sent before plotly's model
existed in the page would be lost otherwise, plotly reads ``_widget_data`` only when it starts), then starts
plotly's own widget on the same model. Until a page has synced, plotly's edit messages are not sent at all: the
sync carries the figure whole, so a first view's points cross the comm once. Nothing waits on the kernel inside anywidget's start-up (it gives a widget 2
s): a busy kernel (a notebook running its later cells) only delays the drawing.

A kernel's first explorer does not wait for the cell to finish before the page has the bundle: it sends it
at once, in the opening state of a short-lived widget (:func:`carry_bundle`), so the page imports plotly while
the kernel projects and builds the figure, and the plot's loader finds it there; that widget's bundle is
emptied and the widget closed when the cell ends, so no saved widget state keeps it.

A plot still waiting for its bundle after 5 s (a kernel busy with later cells, or none: a notebook reopened
with saved widget state and no kernel) carries the class ``nlu-lite-waiting``, and the explorer's stylesheet
shows its kept static copy while it does.
"""
from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._optional import require

WAITING_CLASS = "nlu-lite-waiting"  # on a plot still without plotly after WAITING_MS: its kept copy shows
WAITING_MS = 5000
# plotly's FigureWidget methods that send an edit to the page (plotly/basewidget.py)
EDIT_MESSAGES = ("_send_relayout_msg", "_send_restyle_msg", "_send_addTraces_msg", "_send_moveTraces_msg",
                 "_send_update_msg", "_send_animate_msg", "_send_deleteTraces_msg")
BUNDLE_MESSAGE, SYNC_MESSAGE, SYNCED_MESSAGE = "nlu_lite_bundle", "nlu_lite_sync", "nlu_lite_synced"

# both front-end modules: one bundle per kernel connection, from whichever source brings it first
SHARED = """\
const CACHE = (globalThis.__nluLitePlotly2 ??= { module: null, slots: new Map() });
const mark = (name) => globalThis.performance?.mark?.(`nlu_lite:${name}`);  // benchmarks/explorer_scale.py reads them

function slot(model) {
  const key = model.widget_manager ?? "page";
  let s = CACHE.slots.get(key);
  if (!s) {
    s = { loading: false, requested: false };
    s.promise = new Promise((resolve, reject) => { s.resolve = resolve; s.reject = reject; });
    s.promise.catch(() => CACHE.slots.delete(key));
    CACHE.slots.set(key, s);
  }
  return s;
}

function load(s, bytes, source) {
  if (CACHE.module || s.loading) return;
  s.loading = true;
  mark(`bundle-${source}`);
  const url = URL.createObjectURL(new Blob([bytes], { type: "text/javascript" }));
  import(url).then((module) => { mark("bundle-imported"); CACHE.module = module; s.resolve(module); }, s.reject);
}
"""

LOADER = """\
// nlu_lite: plotly's FigureWidget, its bundle sent once per page by message (nlu_lite/viz/plotwidget.py)
@SHARED@
function bundle(model) {
  if (CACHE.module) return Promise.resolve(CACHE.module);
  const s = slot(model);
  if (!s.loading && !s.requested) {  // nothing on its way (a carrier, see carry_bundle): ask the kernel
    s.requested = true;
    const answer = (msg, buffers) => {
      if (!msg || msg.type !== "@BUNDLE@") return;
      model.off("msg:custom", answer);
      load(s, buffers[0], "received");
    };
    model.on("msg:custom", answer);
    mark("bundle-requested");
    model.send({ type: "@BUNDLE@" });
  }
  return s.promise;
}

export default () => {
  let plotly = null;
  let ready = null;
  return {
    initialize({ model }) {
      ready = bundle(model).then((module) => new Promise((resolve) => {
        const synced = (msg) => {
          if (!msg || msg.type !== "@SYNCED@") return;
          model.off("msg:custom", synced);
          mark("synced");
          plotly = module.default();
          plotly.initialize({ model });
          resolve();
        };
        model.on("msg:custom", synced);
        mark("sync-requested");
        model.send({ type: "@SYNC@" });
      }));
      ready.catch((error) => console.error("nlu_lite: plotly's widget did not load", error));
    },
    render({ model, el }) {
      mark("view");
      let cleanup = null;
      let removed = false;
      const waiting = setTimeout(() => el.classList.add("@WAITING@"), @WAITING_MS@);
      ready.then(() => {
        clearTimeout(waiting);
        el.classList.remove("@WAITING@");
        if (removed) return;
        mark("plotly-render");
        cleanup = plotly.render({ model, el });
      });
      return () => {
        removed = true;
        clearTimeout(waiting);
        if (typeof cleanup === "function") cleanup();
      };
    },
  };
};
""".replace("@SHARED@", SHARED).replace("@BUNDLE@", BUNDLE_MESSAGE).replace("@SYNCED@", SYNCED_MESSAGE).replace(
    "@SYNC@", SYNC_MESSAGE).replace("@WAITING@", WAITING_CLASS).replace("@WAITING_MS@", str(WAITING_MS))


CARRIER = """\
// nlu_lite: plotly's bundle in this widget's opening state, imported at once (nlu_lite/viz/plotwidget.py)
@SHARED@
export default {
  initialize({ model }) {
    const data = model.get("bundle");
    if (data && data.byteLength) load(slot(model), data, "carried");  // a plot still waiting gets it too
  },
};
""".replace("@SHARED@", SHARED)


@functools.cache
def bundle_bytes() -> bytes:
    """plotly's widget bundle (the file its FigureWidget names as ``_esm``), found without importing
    ``plotly.basewidget`` (1.3 s: nbformat, jsonschema), so :func:`carry_bundle` can send it first."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("plotly is not installed")
    return (Path(next(iter(spec.submodule_search_locations))) / "package_data" / "widgetbundle.js").read_bytes()


_CARRIED: list[Any] = []  # the kernel's carrier, once sent


def carry_bundle() -> bool:
    """Send plotly's bundle to the page now, while the kernel is busy, in the opening state of a widget that
    only imports it: once per kernel process, and only inside an IPython kernel. Its bundle is emptied and the
    widget closed after the cell (IPython's ``post_run_cell``): JupyterLab drops closed widgets from the state it
    saves, and nbclient (``nbconvert --execute``) saves the last state sent, now empty. A page that missed it
    (opened later, reloaded) gets the bundle from the plot's own request. Returns whether it was sent."""
    if _CARRIED:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import anywidget
        import traitlets

        payload = bundle_bytes()
    except (ImportError, OSError):
        return False

    class BundleCarrier(anywidget.AnyWidget):
        _esm = CARRIER
        bundle = traitlets.Bytes(b"").tag(sync=True)

    carrier = BundleCarrier(bundle=payload)
    _CARRIED.append(carrier)

    def release(*_: Any) -> None:
        shell.events.unregister("post_run_cell", release)
        carrier.bundle = b""
        carrier.close()

    shell.events.register("post_run_cell", release)
    return True


FIGURE_WIDGET_MODULE = "plotly.graph_objs._figurewidget"
_IMPORTS: dict[str, Any] = {}  # module -> the worker thread importing it


def import_soon(module: str = FIGURE_WIDGET_MODULE) -> None:
    """Start importing ``module`` in a worker thread (once); :func:`_import_in_worker` waits for it. Nothing else
    may import while it runs (see :func:`importing`).

    Why a worker at all: plotly's FigureWidget module imports ``plotly.io._renderers``, which imports nbformat ->
    jsonschema -> rfc3987_syntax, which compiles 38 lark grammars. Measured in an IPython kernel (2-core AMD
    EPYC): 2.5-6.4 s when the explorer's call in the kernel's main thread imports it, 1.4 s in a worker thread of
    the same kernel (1.0-1.7 s at a cell's top level). py-spy shows lark doing the work either way; why the main
    thread's import is slower there was not found (not GC, warnings, logging, the hash seed or the bundle message:
    each ruled out).
    """
    import importlib
    import sys
    import threading

    if module in sys.modules or module in _IMPORTS:
        return

    def run() -> None:
        try:
            importlib.import_module(module)
        except BaseException:  # noqa: BLE001 - the caller imports again and reports it
            return

    worker = threading.Thread(target=run, name=f"nlu_lite: import {module}", daemon=True)
    _IMPORTS[module] = worker
    worker.start()


@contextlib.contextmanager
def importing(module: str = FIGURE_WIDGET_MODULE) -> Iterator[None]:
    """Import ``module`` in a worker thread while the block runs, then wait for it. The block must import
    nothing: two threads importing modules that import each other deadlock, which Python reports by raising
    ``_DeadlockError`` in one of them (measured: the explorer importing IPython while the worker imported
    plotly's chain). The explorer hashes its matrix here, outside Python's lock (0.17 s at 100,000 x 384)."""
    import_soon(module)
    try:
        yield
    finally:
        _import_in_worker(module)


def _import_in_worker(module: str) -> None:
    """Import ``module`` in a worker thread (:func:`import_soon`, or the one it started) and wait for it; an
    error is left for the caller's own import to report."""
    import_soon(module)
    worker = _IMPORTS.pop(module, None)
    if worker is not None:
        worker.join()


@functools.cache
def plot_widget_class() -> type | None:
    """The explorer's plot widget class, or None when anywidget (plotly's FigureWidget needs it) is missing."""
    try:
        require("anywidget", "viz")
    except ImportError:
        return None
    _import_in_worker(FIGURE_WIDGET_MODULE)
    figure_widget = require("plotly.graph_objects", "viz", package="plotly").FigureWidget

    class PlotWidget(figure_widget):
        """plotly's FigureWidget whose front-end code is :data:`LOADER` (see the module's docstring)."""

        _esm = LOADER

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._page_ready = False  # set by the first page's sync: plotly's edit messages are sent from then on
            super().__init__(*args, **kwargs)
            self.on_msg(self._answer)

        def _answer(self, _widget: Any, content: Any, _buffers: Any) -> None:
            kind = content.get("type") if isinstance(content, dict) else None
            if kind == BUNDLE_MESSAGE:
                self.send({"type": BUNDLE_MESSAGE}, buffers=[bundle_bytes()])
            elif kind == SYNC_MESSAGE:  # the figure as it is now, as plotly's _repr_mimebundle_ sets it
                self._widget_layout = copy.deepcopy(self._layout_obj._props)
                self._widget_data = copy.deepcopy(self._data)
                self._page_ready = True
                self.send({"type": SYNCED_MESSAGE})

    def held(name: str) -> Any:
        """plotly's edit message ``name``, not sent before a page has plotly: no page would read it, and the sync
        carries the figure whole (a 100,000-point first view would otherwise cross the comm twice)."""
        def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self._page_ready:
                return getattr(super(PlotWidget, self), name)(*args, **kwargs)
            return None

        send.__name__ = name
        return send

    for name in EDIT_MESSAGES:
        setattr(PlotWidget, name, held(name))
    return PlotWidget
