"""``explore(df)``: an ipywidgets explorer around the plot functions.

Controls pick the projection (one of the nine methods of :mod:`nlu_lite.viz.reduce`, its
dimensions and the parameters that method reads, shown only for it) and the colour and symbol
columns; a search box circles matching rows; a neighbour panel lists the nearest rows
in the original embedding space (type a text or click a point); lasso or box selections come
back to Python as ``explorer.selected``. Every method but PCA and truncated SVD runs in a
background thread while a busy notice shows, so the kernel keeps answering. The plot is a
plotly ``FigureWidget`` (anywidget); without anywidget it falls back to a static figure in an
``Output``.
"""
from __future__ import annotations

import base64
import html
import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._optional import require
from ..errors import InputError
from ..frame import embedding_column, to_matrix
from .frames import (
    frame_level,
    hover_texts,
    label_columns,
    sample_positions,
    search_rows,
    select_rows,
    viz_frame,
)
from .jobs import FitJob, FitStopped, fit_in_process
from .neighbours import METRICS, neighbour_table, query_vector
from .plots import MAX_POINTS, ROLE_POINTS, Points, figure_from_points
from .plotwidget import WAITING_CLASS, carry_bundle, importing, plot_widget_class
from .raster import figure_png
from .reduce import (
    AFFINITIES,
    KERNELS,
    METHODS,
    REDUCERS,
    Projection,
    cached_projection,
    check_choice,
    frozen,
    method_parameters,
    normalize_method,
    project,
    umap_available,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

logger = logging.getLogger(__name__)

NONE = "(none)"
KEPT = -1  # _selection's key for rows selected before a redraw or from Python
SELECTABLE = ("scatter", "scattergl")  # plotly.js draws no selection in 3D
TABLE_ROWS = 10


def _widgets():
    return require("ipywidgets", "viz")


def _check_choices(controls: dict[str, Any]) -> None:
    """Normalise ``kernel`` / ``affinity`` in place: a dropdown would raise a bare TraitError for an unknown one."""
    for name, allowed in (("kernel", KERNELS), ("affinity", AFFINITIES)):
        if name in controls:
            controls[name] = check_choice(name, controls[name], allowed)


def _mark_selected(traces: Any, positions: np.ndarray) -> None:
    """Set each point trace's ``selectedpoints`` to the rows of ``positions`` it draws (None: no selection)."""
    for trace in traces:
        if trace.meta != ROLE_POINTS or trace.type not in SELECTABLE:
            continue
        if not len(positions):
            trace.selectedpoints = None
            continue
        drawn = np.asarray(trace.customdata, dtype=np.int64).ravel()
        trace.selectedpoints = np.flatnonzero(np.isin(drawn, positions)).tolist()


class Explorer:
    """An interactive view of a predict() frame; display it in a notebook (see :func:`explore`).

    From Python: :meth:`set` changes controls, :meth:`search` circles rows,
    :meth:`find_neighbours` fills the neighbour panel, :meth:`wait` waits for a running
    projection; :attr:`selected`, :attr:`matches`, :attr:`neighbours` give DataFrame rows and
    :attr:`figure` a static copy of the plot (for HTML exports or headless runs).
    """

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        method: str = "pca",
        dimensions: int = 2,
        color: str | None = None,
        symbol: str | None = None,
        max_points: int | None = MAX_POINTS,
        sample_seed: int = 0,
        pipe: Any = None,
        background: bool = True,
        perplexity: float = 30.0,
        learning_rate: float | str = "auto",
        max_iter: int = 1000,
        random_state: int = 0,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        kernel: str = "rbf",
        gamma: float | str | None = None,
        affinity: str = "nearest_neighbors",
        height: int = 600,
        opacity: float | str = "auto",
        point_labels: bool | str = "auto",
        x: Any = None,
        y: Any = None,
        snapshot: bool | None = None,
        restore: dict[str, Any] | None = None,
    ) -> None:
        self.df = df
        self.opacity, self.point_labels = opacity, point_labels
        self.level = frame_level(df)
        embedding_column(df)  # fail early on frames without one embedding column
        carry_bundle()  # a kernel's first explorer: the page imports plotly while the rest of this runs
        self.pipe = pipe
        self.background = background
        self.max_points = max_points
        self.sample_seed = sample_seed
        self.positions = sample_positions(len(df), max_points, seed=sample_seed)
        sub = df.iloc[self.positions]
        matrix = to_matrix(sub)
        with importing():  # plotly's widget module, in a worker, while the matrix is hashed (nothing imported here)
            self._matrix = frozen(matrix)
        self._hover = hover_texts(sub)
        self._points: Points | None = None
        self._selection: dict[int, np.ndarray] = {}
        self._selection_listeners: list[Any] = []
        self._matches = np.arange(0)
        self._neighbours = pd.DataFrame()
        self._neighbour_rows = np.arange(0)
        self._query_rows = np.arange(0)
        self._query_vectors: dict[str, np.ndarray] = {}
        self._sense_groups: dict[str, np.ndarray] = {}
        self._clicked_word = ""
        self.senses_result: Any = None
        self.snapshot = _snapshot_default() if snapshot is None else bool(snapshot)
        self._generation = 0
        self._lasso_drawn = False  # plotly.js holds a lasso / box shape
        self._thread: threading.Thread | None = None
        self._job: FitJob | None = None
        self._lock = threading.RLock()
        self._muted = False  # set() changes several controls, then refreshes once
        self._build(method, dimensions, color, symbol, height)
        self._build_parameters(perplexity=perplexity, learning_rate=learning_rate, max_iter=max_iter,
                               random_state=random_state, n_neighbors=n_neighbors, min_dist=min_dist,
                               kernel=kernel, gamma=gamma, affinity=affinity)
        self._build_axes(x, y)
        self._last_query: Any = None
        self._pending_view: dict[str, Any] = {}
        self._restore_query: Any = None
        if restore is not None:
            self._restore(restore)
        self._refresh()

    # ---- layout ---------------------------------------------------------------------------
    def _build(self, method, dimensions, color, symbol, height) -> None:
        w = _widgets()
        methods = [(label, key) for key, label in METHODS.items() if key != "umap" or umap_available()]
        methods.append((AXES_LABEL, AXES))
        method = _method_key(method)
        if method == "umap" and not umap_available():  # a clear error, not the dropdown's TraitError
            require("umap", "viz", package="umap-learn")
        columns = [NONE] + [str(c) for c in label_columns(self.df)]
        for name, value in (("color", color), ("symbol", symbol)):
            if value is not None and value not in columns:
                raise InputError(f"{name}={value!r} is not a column; choose one of {columns[1:]}")
        narrow = w.Layout(width="200px")
        self.method = w.Dropdown(options=methods, value=method, description="Method", layout=narrow)
        self.dimensions = w.ToggleButtons(options=[("2D", 2), ("3D", 3)], value=dimensions,
                                          style={"button_width": "48px"}, layout=w.Layout(width="auto"))
        self.color = w.Dropdown(options=columns, value=color or NONE, description="Colour", layout=narrow)
        self.symbol = w.Dropdown(options=columns, value=symbol or NONE, description="Symbol", layout=narrow)
        self._parameter_row = w.HBox()  # filled by _build_parameters
        self.search_box = w.Text(placeholder=f"a {self.level}, /regex/ or column:value", description="Search",
                                 continuous_update=False)
        self._search_info = w.HTML()
        self.neighbour_query = w.Text(placeholder="a text, or click a point", description="Neighbours of",
                                      continuous_update=False, style={"description_width": "initial"})
        self.k = w.IntSlider(value=10, min=1, max=50, description="k", continuous_update=False,
                             layout=w.Layout(width="220px"))
        self.metric = w.ToggleButtons(options=list(METRICS), value="cosine", style={"button_width": "90px"},
                                      layout=w.Layout(width="auto"))
        self._find = w.Button(description="Find", icon="search", layout=w.Layout(width="80px"))
        self._stop = w.Button(description="Stop", icon="stop", button_style="warning",
                              tooltip="end the running projection (its process is killed)",
                              layout=w.Layout(width="80px", display="none"))
        self._stop.on_click(lambda _button: self.stop())
        self._neighbour_table = w.HTML()
        # the neighbour table's rows, clickable: picking one walks on to its neighbours (and circles it)
        self.neighbour_list = w.Select(options=[], rows=6, description="Walk to",
                                       layout=w.Layout(width="640px", display="none"))
        self.status = w.HTML()
        # word senses (token frames): the word's occurrences clustered, each sense circled in its own colour
        self.senses_word = w.Text(placeholder="a word, or click a token", description="Senses of",
                                  continuous_update=False, style={"description_width": "initial"})
        self._senses_button = w.Button(description="Senses", icon="sitemap", layout=w.Layout(width="90px"))
        self._senses_panel = w.HTML()
        self.senses_word.observe(lambda change: change["new"].strip() and self.find_senses(change["new"]),
                                 names="value")
        self._senses_button.on_click(lambda _button: self.find_senses(self.senses_word.value.strip()
                                                                      or self._clicked_word))
        self._senses_row = w.VBox([w.HBox([self.senses_word, self._senses_button]), self._senses_panel],
                                  layout=w.Layout(display=None if self.level == "token" else "none"))
        self._selection_info = w.HTML("<i>lasso or box-select points to get them as rows: explorer.selected</i>")
        figure_widget = plot_widget_class()
        if figure_widget is not None:
            self.plot = figure_widget(layout={"height": height})
            self._static_output = None
        else:
            self.plot = w.Output(layout={"height": f"{height + 20}px"})
            self._static_output = self.plot
        self._height = height

        self.method.observe(lambda _change: self._muted or self._refresh(), names="value")
        self.dimensions.observe(lambda _change: self._muted or self._refresh(), names="value")
        for control in (self.color, self.symbol):
            control.observe(lambda _change: self._muted or self._redraw(), names="value")
        self.search_box.observe(lambda change: self.search(change["new"]), names="value")
        self.neighbour_query.observe(lambda change: self._neighbours_from_box(), names="value")
        self.k.observe(lambda _change: self._muted or self._neighbours_from_box(), names="value")
        self.metric.observe(lambda _change: self._muted or self._neighbours_from_box(), names="value")
        self._find.on_click(lambda _button: self._neighbours_from_box())
        self.neighbour_list.observe(lambda change: self._muted or change["new"] is None
                                    or self.find_neighbours(int(change["new"])), names="value")

        self.widget = w.VBox([
            w.HBox([self.method, self.dimensions, self.color, self.symbol], layout=w.Layout(align_items="center")),
            self._parameter_row,
            w.HBox([self.search_box, self._search_info]),
            w.HBox([self.status, self._stop], layout=w.Layout(align_items="center")),
            self.plot,
            w.HBox([self.neighbour_query, self.k, self.metric, self._find]),
            self._neighbour_table,
            self.neighbour_list,
            self._senses_row,
            self._selection_info,
        ])
        self.widget.add_class("nlu-lite-explorer")
        # the output after the live explorer is its kept copy (_ipython_display_): hidden while the widget renders
        self.widget.children = (*self.widget.children, w.HTML(SNAPSHOT_STYLE))

    def _build_parameters(self, *, perplexity, learning_rate, max_iter, random_state, n_neighbors, min_dist, kernel,
                          gamma, affinity) -> None:
        """One control per project() parameter, grouped; each shows only while the method reads it."""
        choices = {"kernel": kernel, "affinity": affinity}
        _check_choices(choices)
        w = _widgets()
        slider = {"continuous_update": False, "style": {"description_width": "initial"}}
        text = {"continuous_update": False, "style": {"description_width": "initial"}}
        self.perplexity = w.FloatSlider(value=perplexity, min=2, max=100, step=1, description="perplexity", **slider)
        self.learning_rate = w.Text(value=str(learning_rate), description="learning rate",
                                    layout=w.Layout(width="180px"), **text)
        self.max_iter = w.IntSlider(value=max_iter, min=250, max=5000, step=250, description="iterations", **slider)
        self.random_state = w.IntText(value=random_state, description="seed", layout=w.Layout(width="130px"),
                                      style={"description_width": "initial"})
        self.n_neighbors = w.IntSlider(value=n_neighbors, min=2, max=100, description="n_neighbors", **slider)
        self.min_dist = w.FloatSlider(value=min_dist, min=0.0, max=1.0, step=0.05, description="min_dist", **slider)
        self.kernel = w.Dropdown(options=list(KERNELS), value=choices["kernel"], description="kernel",
                                 layout=w.Layout(width="170px"), style={"description_width": "initial"})
        self.affinity = w.Dropdown(options=list(AFFINITIES), value=choices["affinity"], description="affinity",
                                   layout=w.Layout(width="230px"), style={"description_width": "initial"})
        self.gamma = w.Text(value="auto" if gamma is None else str(gamma), description="gamma",
                            layout=w.Layout(width="150px"), **text)
        self._tsne_box = w.HBox([self.perplexity, self.learning_rate, self.max_iter])
        self._umap_box = w.HBox([self.n_neighbors, self.min_dist])  # n_neighbors: also Isomap, spectral, LLE
        self._kernel_box = w.HBox([self.kernel, self.affinity, self.gamma])  # Kernel PCA, spectral
        self._parameter_row.children = (self._tsne_box, self._umap_box, self._kernel_box, self.random_state)
        for control in self._parameter_controls().values():
            control.observe(lambda _change: self._muted or self._refresh(), names="value")
        self._show_parameters()

    def _parameter_controls(self) -> dict[str, Any]:
        """project()'s parameter name → the control that sets it."""
        return {"perplexity": self.perplexity, "learning_rate": self.learning_rate, "max_iter": self.max_iter,
                "random_state": self.random_state, "n_neighbors": self.n_neighbors, "min_dist": self.min_dist,
                "kernel": self.kernel, "affinity": self.affinity, "gamma": self.gamma}

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        """The widget, and under it (``snapshot``) a static copy of its first view that the notebook keeps: a
        reopened notebook, whose widgets are gone with their kernel, still shows the plot (``explorer.figure`` at
        the end of a cell keeps a later view). While the widget lives, its own stylesheet hides the copy.

        The copy is not refreshed as the view changes: JupyterLab routes a display update only while the cell
        that made the display is running, and the explorer's changes come after it."""
        from IPython.display import display

        display(self.widget)
        if self.snapshot and self._static_output is None:
            display(self._snapshot_bundle(), raw=True)

    def _snapshot_bundle(self) -> dict[str, Any]:
        renderer = require("plotly.io", "viz", package="plotly").renderers["plotly_mimetype"]
        try:
            fig = self._current_figure()
        except InputError:  # a slow method still running: nothing drawn to keep yet
            return {"text/plain": f"{self!r}: the explorer's first view was still being computed"}
        drawn, total = _sample_points(fig, SNAPSHOT_POINTS)
        shown = f"{drawn:,} of {total:,} points, " if drawn < total else ""
        fig.update_layout(height=self._height, title=f"{fig.layout.title.text} (the explorer's first view, {shown}"
                                                         "kept with the notebook)")
        bundle = {**renderer.to_mimebundle(fig.to_dict()), "text/plain": repr(self)}
        picture = figure_png(fig)  # jupyterlab-plotly shows it, and draws the graph only when the pointer enters
        if picture is not None:
            bundle["image/png"] = base64.b64encode(picture).decode("ascii")
        return bundle

    def __repr__(self) -> str:
        return (f"Explorer({len(self.df)} {self.level} rows, {len(self.positions)} plotted, "
                f"method={self.method.value!r}, dimensions={self.dimensions.value})")

    # ---- projection -----------------------------------------------------------------------
    def _used_parameters(self) -> tuple[str, ...]:
        """The parameters the chosen method reads (gamma only for the kernel / affinity that use it)."""
        if self.method.value == AXES:
            return ()
        return method_parameters(self.method.value, kernel=self.kernel.value, affinity=self.affinity.value)

    def _reducer_params(self) -> dict[str, Any]:
        controls = self._parameter_controls()
        params = {name: controls[name].value for name in self._used_parameters() if name in controls}
        for name in ("learning_rate", "gamma"):  # free text: empty means the default
            if name in params:
                params[name] = params[name].strip() or "auto"
        return params

    def _show_parameters(self) -> None:
        used = set(self._used_parameters())
        if self.method.value == "pca":
            used.discard("random_state")  # PCA's full SVD ignores the seed
        for name, control in self._parameter_controls().items():
            control.layout.display = None if name in used else "none"
        for box in (self._tsne_box, self._umap_box, self._kernel_box):
            shown = any(child.layout.display is None for child in box.children)
            box.layout.display = None if shown else "none"
        if hasattr(self, "_axes_box"):
            self._axes_box.layout.display = None if self.method.value == AXES else "none"

    def _refresh(self) -> None:
        """Project with the current controls (in a thread unless cached or a fast method), then draw."""
        self._show_parameters()
        method, dims, params = self.method.value, self.dimensions.value, self._reducer_params()
        with self._lock:
            self._generation += 1
            generation = self._generation
        if method == AXES:
            self.stop()
            self._project_axes(generation, dims)
            return
        try:
            cached = cached_projection(self._matrix, method, dims, **params) is not None
        except InputError as exc:  # a bad value typed in a text box: say so, keep the old plot
            self.status.value = f"<span class='nlu-lite-error'>⚠ {html.escape(str(exc))}</span>"
            return
        self.stop()  # a run for older controls: end it, its result would be thrown away
        if cached or REDUCERS[method].fast or not self.background:
            self._project_and_draw(generation, method, dims, params, cached)
            return
        label = METHODS[method]
        busy = f"⏳ running {label} on {len(self.positions):,} points in its own process… the kernel stays free"
        self.status.value = f"<span class='nlu-lite-busy'>{busy}</span>"

        def progress(iteration: int, total: int) -> None:
            if generation == self._generation:
                step = "epoch" if method == "umap" else "iteration"
                self.status.value = f"<span class='nlu-lite-busy'>{busy} {step} {iteration:,} of {total:,}</span>"

        try:
            job = fit_in_process(self._matrix, method, dims, on_progress=progress, **params)
        except InputError as exc:
            self.status.value = f"<span class='nlu-lite-error'>⚠ {html.escape(str(exc))}</span>"
            return
        self._job = job
        self._stop.layout.display = None
        self._thread = threading.Thread(target=self._wait_and_draw, args=(generation, job), name=f"nlu-lite-{method}",
                                        daemon=True)
        self._thread.start()

    # ---- semantic axes -------------------------------------------------------------------
    def _build_axes(self, x: Any, y: Any) -> None:
        """Two axes' poles as text boxes (a pole may be several texts: ``a | b``), shown for Semantic axes."""
        w = _widgets()
        style = {"description_width": "initial"}
        boxes = []
        for name, pair in (("x", x), ("y", y)):
            a, b = _pole_texts(pair)
            low = w.Text(value=a, description=f"{name} from", continuous_update=False, style=style,
                         placeholder="text | text …", layout=w.Layout(width="230px"))
            high = w.Text(value=b, description="to", continuous_update=False, style=style,
                          layout=w.Layout(width="200px"))
            for box in (low, high):
                box.observe(lambda _change: self._muted or self.method.value != AXES or self._refresh(), names="value")
            boxes.append((low, high))
        (self.x_from, self.x_to), (self.y_from, self.y_to) = boxes
        self._axes_box = w.HBox([self.x_from, self.x_to, self.y_from, self.y_to])
        self._parameter_row.children = (*self._parameter_row.children, self._axes_box)
        self._show_parameters()

    def _axes(self) -> list[tuple[Any, Any]]:
        pairs = []
        for low, high in ((self.x_from, self.x_to), (self.y_from, self.y_to)):
            a, b = _pole(low.value), _pole(high.value)
            if a is not None and b is not None:
                pairs.append((a, b))
            elif (a is None) != (b is None):
                raise InputError(f"an axis needs both poles: '{low.description}' and 'to'")
        if not pairs:
            raise InputError("type the poles of the x axis (a text, or several as 'a | b'), e.g. money ↔ river; "
                             "the y axis is optional")
        return pairs

    def _project_axes(self, generation: int, dims: int) -> None:
        """Every plotted row placed on the typed axes (rest: the principal directions the axes leave out)."""
        from .axes import ARROW, _pole_name, axis_projection, pole_vector

        try:
            pairs = self._axes()
            whole = to_matrix(self.df)
            poles = [(pole_vector(self.df, a, pipe=self.pipe, matrix=whole),
                      pole_vector(self.df, b, pipe=self.pipe, matrix=whole)) for a, b in pairs]
            names = [f"{_pole_name(a)}{ARROW}{_pole_name(b)}" for a, b in pairs]
            projection = axis_projection(self._matrix, poles, names, max(dims, len(pairs)))
        except InputError as exc:
            self.status.value = f"<span class='nlu-lite-error'>⚠ {html.escape(str(exc))}</span>"
            return
        self._draw(generation, projection, cached=False)

    # ---- word senses ----------------------------------------------------------------------
    def find_senses(self, word: str, **options: Any) -> Any:
        """Cluster ``word``'s occurrences into senses (:func:`nlu_lite.senses`; token frames): the panel shows each
        sense's name, keywords and keyword-in-context lines, and the plot circles each sense in its own colour.
        Returns the :class:`~nlu_lite.viz.senses.Senses` (also ``explorer.senses_result``)."""
        from .senses import senses

        try:
            if not word:
                raise InputError("type a word, or click a token and press Senses")
            result = senses(self.df, word, **options)
        except InputError as exc:
            self._senses_panel.value = f"<span class='nlu-lite-error'>{html.escape(str(exc))}</span>"
            self._sense_groups, self.senses_result = {}, None
            self._redraw()
            return None
        rows = np.flatnonzero(self.df["token"].astype(str).str.lower().to_numpy() == word.strip().lower())
        labels = result.occurrences["sense"].to_numpy()
        self._sense_groups = {f"sense {s}: {name}": rows[labels == s]
                              for s, name in zip(result.summary["sense"], result.summary["name"])}
        self.senses_result = result
        self._senses_panel.value = result._repr_html_()
        self._redraw()
        return result

    def _wait_and_draw(self, generation: int, job: FitJob) -> None:
        try:
            projection = job.result()
        except FitStopped as exc:
            if generation != self._generation:  # replaced by a newer run, not stopped by the user
                return
            if self._points is None:  # nothing drawn yet: PCA (fast) rather than empty axes
                muted, self._muted = self._muted, True
                try:
                    self.method.value = "pca"
                finally:
                    self._muted = muted
                self._refresh()
                self.status.value = (f"<span class='nlu-lite-stopped'>⏹ {html.escape(str(exc))} before its first view: "
                                     "PCA is shown instead</span>")
                return
            self.status.value = (f"<span class='nlu-lite-stopped'>⏹ {html.escape(str(exc))}; the plot shows the "
                                 "last finished projection</span>")
            return
        except Exception as exc:
            logger.exception("projection failed")
            self.status.value = f"<span class='nlu-lite-error'>⚠ {html.escape(str(exc))}</span>"
            return
        finally:
            if self._job is job:
                self._stop.layout.display = "none"
        self._draw(generation, projection, cached=False)

    def stop(self) -> Explorer:
        """End a running projection now (its process is killed, the CPU goes idle); the plot keeps the last
        finished one. Returns self."""
        job, self._job = self._job, None
        if job is not None:
            job.stop()
            self._stop.layout.display = "none"
        return self

    def _project_and_draw(self, generation: int, method: str, dims: int, params: dict[str, Any],
                          cached: bool) -> None:
        try:
            projection = project(self._matrix, method, dims, **params)
        except Exception as exc:  # shown in the widget: a thread has no caller to raise to
            logger.exception("projection failed")
            self.status.value = f"<span class='nlu-lite-error'>⚠ {html.escape(str(exc))}</span>"
            if not self.background:
                raise
            return
        self._draw(generation, projection, cached)

    def _draw(self, generation: int, projection: Projection, cached: bool) -> None:
        with self._lock:
            if generation != self._generation:  # the controls changed meanwhile: a newer run draws
                return
            self._points = Points(self.positions, projection, self._hover, len(self.df), self.level,
                                  self.max_points, self.sample_seed)
            query, self._restore_query = self._restore_query, None
            if isinstance(query, str):  # a restored state's neighbour query: the box fills its panel
                self.neighbour_query.value = query
            elif query is not None:
                self.find_neighbours(query)
            self._redraw()
            view, self._pending_view = self._pending_view, {}
            if view and self._static_output is None:  # a restored state's zoom or camera
                self.plot.update_layout({key.replace(".", "_"): value for key, value in view.items()})
            sample = (f" (a random sample of {len(self.positions):,} of {len(self.df):,} rows)"
                      if len(self.positions) < len(self.df) else "")
            timing = f"(cached; fitted in {projection.seconds:.2f} s)" if cached else f"in {projection.seconds:.2f} s"
            self.status.value = (f"<span class='nlu-lite-done'>{projection.label} of {len(self.positions):,} "
                                 f"points{sample} {timing}</span>")

    def wait(self, timeout: float | None = None) -> Explorer:
        """Wait for a projection running in the background (returns self)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self

    # ---- drawing --------------------------------------------------------------------------
    def _highlights(self) -> dict[str, np.ndarray]:
        groups = {}
        if len(self._matches):
            groups[f"search: {self.search_box.value}"] = self._matches
        if len(self._query_rows):
            groups["query"] = self._query_rows
        if len(self._neighbour_rows):
            groups[f"{len(self._neighbour_rows)} nearest ({self.metric.value})"] = self._neighbour_rows
        groups.update(self._sense_groups)
        return groups

    def _current_figure(self) -> go.Figure:
        if self._points is None:
            raise InputError(f"no projection yet: call explorer.wait() while {METHODS[self.method.value]} runs")
        return figure_from_points(
            self.df, self._points, color=None if self.color.value == NONE else self.color.value,
            symbol=None if self.symbol.value == NONE else self.symbol.value, highlight=self._highlights(),
            queries=self._query_vectors, opacity=self.opacity, point_labels=self.point_labels,
        )

    @property
    def figure(self) -> go.Figure:
        """A static copy of the current plot (renders in HTML exports and headless runs)."""
        return self._current_figure()

    @property
    def points(self) -> Points | None:
        """The rows plotted and their current projection."""
        return self._points

    def _redraw(self) -> None:
        with self._lock:
            if self._points is None:
                return
            fig = self._current_figure()
            fig.update_layout(height=self._height, dragmode="lasso" if self._points.projection.dimensions == 2
                              else "orbit")
            # the selection is rows, not trace points: it outlives a recolour, a method switch and 2D/3D
            kept = self._selected_positions()
            self._selection = {KEPT: kept} if len(kept) else {}
            if self._static_output is not None:  # plotly's mimetype: JupyterLab renders it offline
                _mark_selected(fig.data, kept)
                renderer = require("plotly.io", "viz", package="plotly").renderers["plotly_mimetype"]
                bundle = {**renderer.to_mimebundle(fig.to_dict()), "text/plain": repr(self)}
                self._static_output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
                return
            plot = self.plot
            plot.data = ()
            plot.add_traces(list(fig.data))  # one message with every trace
            plot.layout = fig.layout  # a new title means the new traces have arrived
            if self._lasso_drawn:
                # plotly.js keeps the lasso as a shape and re-selects whatever lies under it in the new
                # coordinates: remove the shape (plotly.py's own relayout message: its Python layout never held
                # the shape, so a public relayout would send nothing); the empty re-selection it reports back
                # has no selector and is ignored
                self._lasso_drawn = False
                plot._send_relayout_msg({"selections": []})
            with plot.batch_update():  # then mark the kept rows in the new traces
                _mark_selected(plot.data, kept)
            for trace in plot.data:
                trace.on_selection(self._on_selection)
                trace.on_click(self._on_click)
            if plot.data:
                plot.data[0].on_deselect(self._on_deselect)  # one call per event (plotly.py calls every trace)

    # ---- selection, search, neighbours ----------------------------------------------------
    def _trace_positions(self, trace: Any, point_inds: list[int]) -> np.ndarray:
        if trace.meta != ROLE_POINTS or not point_inds:
            return np.arange(0)
        return np.asarray(trace.customdata, dtype=np.int64)[list(point_inds)]

    def _on_selection(self, trace: Any, points: Any, selector: Any) -> None:
        if selector is None:  # plotly.js re-selecting after a relayout, not a lasso or box the user drew:
            # plotly.py has set each trace's selectedpoints to it, trace by trace: once the last is done, mark
            # the selected rows again
            if points.trace_index == len(self.plot.data) - 1:
                with self.plot.batch_update():
                    _mark_selected(self.plot.data, self._selected_positions())
            return
        # plotly.js reports a new lasso trace by trace: it replaces the selection carried over a redraw
        self._lasso_drawn = True
        self._selection.pop(KEPT, None)
        self._selection[points.trace_index] = self._trace_positions(trace, points.point_inds)
        self._selection_changed()

    def _on_deselect(self, _trace: Any, _points: Any) -> None:
        self._lasso_drawn = False
        self._selection = {}
        self._selection_changed()

    def _on_click(self, trace: Any, points: Any, _state: Any) -> None:
        chosen = self._trace_positions(trace, points.point_inds)
        if len(chosen):
            if self.level == "token":  # the Senses button takes the clicked token's word
                self._clicked_word = str(self.df["token"].iloc[int(chosen[0])])
                self.senses_word.placeholder = f"{self._clicked_word} (clicked): press Senses"
            self.find_neighbours(int(chosen[0]))

    def select(self, rows: Any) -> pd.DataFrame:
        """Set the selection from Python (positions, texts or a mask) and return the rows."""
        chosen = select_rows(self.df, rows)
        self._selection = {KEPT: np.unique(chosen)} if len(chosen) else {}
        self._selection_changed()
        if self._static_output is None:
            with self.plot.batch_update():
                _mark_selected(self.plot.data, self._selected_positions())
        else:
            self._redraw()
        return self.selected

    def _selected_positions(self) -> np.ndarray:
        parts = [p for p in self._selection.values() if len(p)]
        return np.unique(np.concatenate(parts)) if parts else np.arange(0)

    @property
    def selected(self) -> pd.DataFrame:
        """The rows of the frame selected in the plot (lasso / box select), in frame order."""
        return self.df.iloc[self._selected_positions()]

    def _show_selection(self) -> None:
        chosen = self.selected
        if chosen.empty:
            self._selection_info.value = "<i>no points selected</i>"
            return
        preview = self._table_html(chosen.head(TABLE_ROWS), self._selected_positions()[:TABLE_ROWS])
        self._selection_info.value = (f"<b class='nlu-lite-selected'>{len(chosen)} selected</b> (explorer.selected)"
                                      f"{' — first ' + str(TABLE_ROWS) if len(chosen) > TABLE_ROWS else ''}{preview}")

    def _selection_changed(self) -> None:
        self._show_selection()
        positions = self._selected_positions()
        for listener in list(self._selection_listeners):
            listener(positions)

    def on_selection_change(self, callback: Any) -> None:
        """Call ``callback(positions)`` (the selected rows' ``iloc``) whenever the selection changes."""
        self._selection_listeners.append(callback)

    def _table_html(self, rows: pd.DataFrame, positions: Any = None) -> str:
        """A small table of ``rows`` (their frame ``positions``: a token's sentence is shown around it)."""
        keep = [c for c in ("rank", "similarity", "distance", "origin_index", self.level, "context", self.color.value,
                            self.symbol.value) if c in rows.columns or c == "context"]
        if positions is not None and self.level == "token" and "sentence" in self.df.columns:
            rows = rows.assign(context=self._contexts(np.asarray(positions, dtype=np.int64)))
        keep = list(dict.fromkeys(c for c in keep if c in rows.columns))
        return rows[keep].to_html(index=False, escape=True, float_format=lambda v: f"{v:.3f}", border=0)

    def _contexts(self, positions: np.ndarray, chars: int = 40) -> list[str]:
        """Each token's sentence around it, ``…left [token] right…`` (found once for the whole frame)."""
        from .frames import _token_starts

        if getattr(self, "_starts", None) is None:
            df = self.df
            groups = list(zip(df["origin_index"], df["sentence_index"] if "sentence_index" in df else [0] * len(df)))
            self._starts = _token_starts(df["token"].astype(str).to_numpy(dtype=object),
                                         df["sentence"].astype(str).to_numpy(dtype=object), groups)
        out = []
        for position in positions.tolist():
            token, sentence = str(self.df["token"].iat[position]), str(self.df["sentence"].iat[position])
            start = int(self._starts[position])
            if start < 0:
                out.append(sentence[:2 * chars])
                continue
            left, right = sentence[:start], sentence[start + len(token):]
            out.append(f"{'…' if len(left) > chars else ''}{left[-chars:]}[{token}]{right[:chars]}"
                       f"{'…' if len(right) > chars else ''}")
        return out

    def search(self, query: str) -> pd.DataFrame:
        """Circle the rows ``query`` names and return them: a text (tokens: equal to it; sentences and
        documents: containing it; case-insensitive), ``/pattern/`` (a regular expression) or ``column:value``
        (e.g. ``topic:finance``)."""
        query = (query or "").strip()
        if self.search_box.value != query:
            self.search_box.value = query  # its observer calls search() again with the same query
            return self.matches
        if not query:
            self._matches = np.arange(0)
            self._search_info.value = ""
        else:
            substring = self.level != "token"
            try:
                self._matches = search_rows(self.df, query, substring=substring)
            except InputError as exc:
                self._matches = np.arange(0)
                self._search_info.value = f"<span class='nlu-lite-matches'>{html.escape(str(exc))}</span>"
            else:
                shown = int(np.isin(self._matches, self.positions).sum())
                extra = f", {shown} in the plotted sample" if shown < len(self._matches) else ""
                self._search_info.value = f"<span class='nlu-lite-matches'>{len(self._matches)} matches{extra}</span>"
        self._redraw()
        return self.matches

    @property
    def matches(self) -> pd.DataFrame:
        """The rows the search box matches."""
        return self.df.iloc[self._matches]

    def _neighbours_from_box(self) -> None:
        query = self.neighbour_query.value.strip()
        if query:
            self.find_neighbours(query, k=self.k.value, metric=self.metric.value)

    def find_neighbours(self, query: Any, k: int | None = None, metric: str | None = None) -> pd.DataFrame:
        """Fill the neighbour panel for ``query`` (a text, a row position or a vector) and return the table."""
        k = self.k.value if k is None else k
        metric = metric or self.metric.value
        if (k, metric) != (self.k.value, self.metric.value) and k in range(self.k.min, self.k.max + 1) \
                and metric in METRICS:
            muted, self._muted = self._muted, True  # the controls show what was asked, without a second search
            try:
                self.k.value, self.metric.value = k, metric
            finally:
                self._muted = muted
        try:  # the query resolved once (a text not in the frame is embedded once), then its neighbours
            matrix = to_matrix(self.df)
            vector, own = query_vector(self.df, query, pipe=self.pipe, matrix=matrix)
            table = neighbour_table(self.df, matrix, vector, own, k, metric)
        except InputError as exc:
            self._neighbour_table.value = f"<span class='nlu-lite-error'>{html.escape(str(exc))}</span>"
            self._list_neighbours(pd.DataFrame(columns=["rank", "position", "similarity", self.level]), "")
            return pd.DataFrame()
        self._last_query = int(query) if isinstance(query, (int, np.integer)) and not isinstance(query, bool) \
            else query
        self._neighbours, self._neighbour_rows, self._query_rows = table, table["position"].to_numpy(), own
        # a typed text that is no row of the frame: drawn as a star where the method can place it
        self._query_vectors = {f"query: {query}": np.asarray(vector)} if isinstance(query, str) and not len(own) \
            else {}
        about = html.escape(query if isinstance(query, str) else
                            f"row {query}: {self.df.iloc[int(query)][self.level]!s}" if np.ndim(query) == 0
                            else "a vector")
        self._neighbour_table.value = (f"<b>{len(table)} nearest to {about}</b> ({metric}, original space)"
                                       f"{self._drawn_note(self._neighbour_rows)}"
                                       f"{self._table_html(table, table['position'])}")
        self._list_neighbours(table, metric)
        self._redraw()
        return table

    def _list_neighbours(self, table: pd.DataFrame, metric: str) -> None:
        """The table's rows as the walk list: ``rank. text (similarity)``, each worth its row position."""
        score = "similarity" if "similarity" in table.columns else "distance"
        options = [(f"{int(r['rank'])}. {_short(str(r[self.level]))} ({score[:3]} {float(r[score]):.3f})",
                    int(r["position"])) for _, r in table.iterrows()]
        muted, self._muted = self._muted, True  # filling the list is no pick
        try:
            self.neighbour_list.options = options
            self.neighbour_list.value = None
            self.neighbour_list.layout.display = "flex" if options else "none"
        finally:
            self._muted = muted

    def _drawn_note(self, rows: np.ndarray) -> str:
        """How many of ``rows`` the plot shows, when not all: the sample left them out and the method cannot
        place them."""
        inside = int(np.isin(rows, self.positions).sum())
        points = self._points
        if inside == len(rows) or (points is not None and points.projection.transform is not None):
            return ""
        method = METHODS[self.method.value]
        return (f" <span class='nlu-lite-drawn'>— {inside} of {len(rows)} drawn: the others are outside the "
                f"plotted sample and {html.escape(method)} places only the rows it fitted (PCA, SVD or UMAP place "
                "them all)</span>")

    @property
    def neighbours(self) -> pd.DataFrame:
        """The neighbour panel's table: rank, position, similarity / distance, the rows."""
        return self._neighbours

    def state(self) -> dict[str, Any]:
        """What this view is, as a JSON-able dict: ``explore(df, state=...)`` reopens it (same frame)."""
        query = self._last_query
        return {
            "version": STATE_VERSION, "rows": len(self.df), "method": self.method.value,
            "dimensions": self.dimensions.value,
            "color": None if self.color.value == NONE else self.color.value,
            "symbol": None if self.symbol.value == NONE else self.symbol.value,
            "parameters": {name: control.value for name, control in self._parameter_controls().items()},
            "max_points": self.max_points, "sample_seed": self.sample_seed,
            "selection": self._selected_positions().tolist(), "search": self.search_box.value,
            "neighbours": {"query": query if isinstance(query, (str, int)) else None, "k": self.k.value,
                           "metric": self.metric.value},
            "view": _view_of(self.plot.layout) if self._static_output is None else {},
            "axes": {"x": [self.x_from.value, self.x_to.value], "y": [self.y_from.value, self.y_to.value]},
        }

    def _restore(self, state: dict[str, Any]) -> None:
        """Selection, search, neighbours and view of a saved state (controls were set by the constructor)."""
        chosen = select_rows(self.df, list(state.get("selection") or []))
        self._selection = {KEPT: np.unique(chosen)} if len(chosen) else {}
        self._show_selection()
        neighbours = state.get("neighbours") or {}
        self._muted = True
        try:
            self.k.value = neighbours.get("k", self.k.value)
            self.metric.value = neighbours.get("metric", self.metric.value)
            self.search_box.value = state.get("search") or ""
        finally:
            self._muted = False
        self._pending_view = {k: v for k, v in (state.get("view") or {}).items() if k in VIEW_KEYS}
        self._restore_query = neighbours.get("query")

    def set(self, **controls: Any) -> Explorer:
        """Change controls from Python, e.g. ``explorer.set(method='tsne', perplexity=20, color='topic')``."""
        valid = {"method", "dimensions", "color", "symbol", "k", "metric", "x", "y", *self._parameter_controls()}
        unknown = set(controls) - valid
        if unknown:
            raise InputError(f"unknown controls {sorted(unknown)}; valid: {sorted(valid)}")
        if "method" in controls:
            controls["method"] = _method_key(controls["method"])
        for name in ("x", "y"):  # an axis: its two pole boxes
            if name in controls:
                low, high = _pole_texts(controls.pop(name))
                controls[f"{name}_from"], controls[f"{name}_to"] = low, high
        _check_choices(controls)
        for name in ("color", "symbol"):
            if name in controls and controls[name] is None:
                controls[name] = NONE
        if "learning_rate" in controls:
            controls["learning_rate"] = str(controls["learning_rate"])
        if "gamma" in controls:
            controls["gamma"] = "auto" if controls["gamma"] is None else str(controls["gamma"])
        self._muted = True
        try:
            for name, value in controls.items():
                getattr(self, name).value = value
        finally:
            self._muted = False
        if set(controls) & {"color", "symbol"} == set(controls):
            self._redraw()
        elif set(controls) - {"k", "metric"}:
            self._refresh()
        else:
            self._neighbours_from_box()
        return self


STATE_VERSION = 1
VIEW_KEYS = ("xaxis.range", "yaxis.range", "scene.camera")


AXES, AXES_LABEL = "axes", "Semantic axes"
# JupyterLab / Notebook 7: each output is a .jp-OutputArea-child; the plotly output (jupyterlab-plotly's
# .jp-RenderedPlotly, its picture or its graph) right after a live explorer is its copy (_ipython_display_ puts it
# there), shown only while the explorer's plot waits for plotly (plotwidget.py)
SNAPSHOT_STYLE = (f"<style>.jp-OutputArea-child:has(.nlu-lite-explorer):not(:has(.{WAITING_CLASS})) + "
                  ".jp-OutputArea-child:has(.jp-RenderedPlotly) {display: none !important;}</style>")


SNAPSHOT_POINTS = 5_000  # the kept copy draws at most this many points: 100,000 would add 9.6 MB to the notebook


def _sample_points(fig: Any, limit: int) -> tuple[int, int]:
    """Thin the point traces of a figure (in place) to ``limit`` points in all, a seeded uniform sample (each
    trace keeps its share; queries and highlights stay whole). Returns (points kept, points before)."""
    traces = [t for t in fig.data if t.meta == ROLE_POINTS and t.x is not None]
    sizes = [len(t.x) for t in traces]
    total = sum(sizes)
    if total <= limit:
        return total, total
    chosen = sample_positions(total, limit)
    for trace, start, size in zip(traces, np.cumsum([0, *sizes[:-1]]), sizes):
        keep = chosen[(chosen >= start) & (chosen < start + size)] - start
        update: dict[str, Any] = {"selectedpoints": None}  # positions in the full trace
        for owner, prefix, names in ((trace, "", ("x", "y", "z", "hovertext", "customdata", "text", "ids")),
                                     (trace.marker, "marker_", ("color", "size", "symbol", "opacity"))):
            for name in names:
                value = getattr(owner, name, None)  # None where the trace type has no such property (z in 2-D)
                if value is not None and np.ndim(value) == 1 and len(value) == size:
                    update[prefix + name] = np.asarray(value)[keep]
        trace.update(update)
    return limit, total


def _snapshot_default() -> bool:
    """Keep a static copy under the widget where the front end hides it while the widget lives: a kernel that
    Jupyter Server started (JupyterLab, Notebook 7: ``JPY_SESSION_NAME``), not VS Code's (``VSCODE_PID``), whose
    outputs are laid out otherwise (the copy would show twice there)."""
    import os

    return "JPY_SESSION_NAME" in os.environ and "VSCODE_PID" not in os.environ


def _method_key(method: str) -> str:
    """A method's key: the reducers' (``normalize_method``), or ``"axes"`` for Semantic axes."""
    if "".join(ch for ch in str(method).lower() if ch.isalnum()) in ("axes", "semanticaxes", "axis", "custom"):
        return AXES
    return normalize_method(method)


def _pole(text: str) -> Any:
    """A pole box's text: one text, several (``a | b``: their mean), or None when empty."""
    parts = [part.strip() for part in (text or "").split("|") if part.strip()]
    return None if not parts else parts[0] if len(parts) == 1 else parts


def _pole_texts(pair: Any) -> tuple[str, str]:
    """An axis given as ``('money', 'river')``, ``'money ↔ river'`` or ``(['a', 'b'], 'c')`` as two box texts."""
    if pair is None:
        return "", ""
    from .axes import _axis

    a, b = _axis(pair)
    text = [" | ".join(p) if isinstance(p, (list, tuple)) else p for p in (a, b)]
    if not all(isinstance(t, str) for t in text):
        raise InputError("the explorer's axes take texts (or lists of texts); for vectors use nlu_lite.plot_axes")
    return text[0], text[1]


def _short(text: str, width: int = 80) -> str:
    """One line of at most ``width`` characters (a list option cannot wrap)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _view_of(layout: Any) -> dict[str, Any]:
    """The zoom (2D axis ranges) or camera (3D) the user left the plot at, as plain lists and dicts."""
    view = {}
    for key in VIEW_KEYS:
        value = layout
        for part in key.split("."):
            value = getattr(value, part, None) if value is not None else None
        if value is not None:
            value = value.to_plotly_json() if hasattr(value, "to_plotly_json") else list(value)
            if value:
                view[key] = value
    return view


def explore(df: pd.DataFrame, **kwargs: Any) -> Explorer:
    """An interactive explorer of a predict() frame; show it by making it a cell's last value.

    Keyword arguments set the starting controls: ``method`` (``"pca"``, ``"svd"``,
    ``"kernel_pca"``, ``"tsne"``, ``"umap"``, ``"isomap"``, ``"mds"``, ``"spectral"``, ``"lle"`` or
    NLU's spellings), ``dimensions``, ``color`` and ``symbol`` (column names), ``perplexity``,
    ``learning_rate``, ``max_iter``, ``random_state``, ``n_neighbors``, ``min_dist``, ``kernel``,
    ``gamma``, ``affinity``; also ``max_points`` (sample past it; MDS takes at most 1,000 points,
    Isomap, Kernel PCA, spectral and LLE 5,000), ``pipe`` (embeds neighbour queries not in the
    frame), ``background`` (run the slower methods in a thread, default True), ``height``, ``opacity`` and
    ``point_labels`` (as :func:`.plots.plot_embeddings`). ``method='axes'`` (Semantic axes, the Embedding
    Projector's custom projection) places the rows on ``x`` and optionally ``y``, each a pair of poles
    (``x=('money', 'river')``, ``'money ↔ river'``, a pole of several texts as a list; in the widget ``a | b``),
    filled up with the principal directions the axes leave out. On a token frame, the Senses box clusters a
    word's occurrences (:func:`nlu_lite.senses`) and circles each sense. ``snapshot``: keep a static copy of the
    first view under the widget for the saved notebook (default: where Jupyter Server started the kernel, not in
    VS Code). For a token frame of a whole corpus, explore
    :func:`.words.distinct_words` of it: one point per word, with counts.

    >>> import nlu_lite
    >>> pipe = nlu_lite.load('en.embed_sentence.minilm_l6')  # doctest: +SKIP
    >>> df = pipe.predict(nlu_lite.viz.load_corpus().text)  # doctest: +SKIP
    >>> explore(df, color='origin_index')  # doctest: +SKIP

    ``column``: which embedding column to explore in a frame of several models (``load('a b')``); ``df``
    may also be an ``(n, dim)`` matrix (``pipe.embed(...)``) with ``labels`` (a frame or texts).

    ``state``: what :meth:`Explorer.state` returned (a JSON-able dict: save it with the notebook or a file), to
    reopen the same view of the same frame: method and parameters, colour, sample, zoom or camera, selection,
    search and neighbour query. Keyword arguments given beside it win.
    """
    state = kwargs.pop("state", None)
    frame = viz_frame(df, kwargs.pop("column", None), kwargs.pop("labels", None))
    if state is None:
        return Explorer(frame, **kwargs)
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise InputError(f"state= takes what explorer.state() returned (version {STATE_VERSION}); got {state!r:.80}")
    if state.get("rows") != len(frame):
        raise InputError(f"this state is of a frame of {state.get('rows')} rows, not {len(frame)}: explore the "
                         "frame it was saved from")
    controls = {"method": state["method"], "dimensions": state["dimensions"], "color": state.get("color"),
                "symbol": state.get("symbol"), "max_points": state.get("max_points", MAX_POINTS),
                "sample_seed": state.get("sample_seed", 0), **state.get("parameters", {}),
                **{name: tuple(pair) for name, pair in (state.get("axes") or {}).items() if any(pair)}}
    explorer = Explorer(frame, **{**controls, **kwargs, "restore": state})
    return explorer
