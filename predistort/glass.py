"""The Real object tab's side of a visitor's session: setup, advice, placement, stand map, print, calibration.

The scene as a physical setup, where to put the print, how precisely the camera will stand, where it may
stand, the print itself, and (with the chart) calibration from one photo.

:class:`RealGlass` is a part of :class:`predistort.service.Session` (its base class): its methods use the
session's ``scene``, ``model``, ``results``, ``advice``, ``placement`` and ``folder``, and raise
:class:`~predistort.settings.ServiceError` with a sentence for the visitor.
"""
from __future__ import annotations

from .resources import default_model, model_scene, renderer_for
from .settings import ServiceError

CHART_RESOLUTION = 256           # the chart's texels at least (its markers' cells must be read in a phone's photo)


class RealGlass:
    """The real-glass actions of a :class:`predistort.service.Session` (see the module doc)."""

    calibration = None               # the last calibration (predistort.calibrate.Calibration), if any
    nominal = None                   # the setup's scene as measured, before a calibration replaced it

    def setup(self):
        """This session's setup in millimetres (:class:`predistort.physical.PhysicalSetup`): as measured, when
        a calibration has replaced the scene (the print and the ball are the same; the camera is the fit's)."""
        from .physical import PhysicalSetup
        try:
            return PhysicalSetup.from_scene(self.nominal or self.scene)
        except ValueError as e:
            raise ServiceError(str(e)) from None

    def advise(self, setup, progress=None, paper=None):
        """Where to put the print for this ball and camera (:func:`predistort.advise.advise`): returns the Advice
        (also kept, for :meth:`correctability`). The search probes a dozen scenes at up to 128²; ``progress``
        hears ``(probes done, probes planned, distance mm, predicted ratio)`` after each. `paper` (a name of
        :data:`predistort.paper.PAPERS` or ``WxH`` mm): only distances whose print fits one sheet of it."""
        from .advise import advise, advise_on_paper
        setup = setup.replace(resolution=self.resolution)
        if _paper(paper):
            self.advice, _ = advise_on_paper(setup, _paper(paper), progress=progress)
        else:
            self.advice = advise(setup, progress=progress)
        return self.advice

    def use_setup(self, setup):
        """Pre-distort for this physical setup from now on: the default model when it was made for exactly this
        scene, else the instant solve on the setup's measured light transport (probed first if new)."""
        from .layers import instant_model
        from .solve import transport_for
        if self.training:
            raise ServiceError("A training is running in this session: stop it first, then change the setup.")
        scene = setup.replace(resolution=self.resolution).to_scene()
        model, _ = default_model(self.settings)
        if model is not None and model_scene(model) == scene:
            self._use(model, model.info.get("source", "the default model"))
        else:
            model = instant_model(transport_for(scene, renderer=renderer_for(scene))).eval()
            self._use(model, "the instant solve for your setup")
        self.results, self.calibration, self.nominal = [], None, None
        return self.status()

    def set_placement(self, preset):
        """How precisely the camera will be placed: a name of :data:`predistort.tolerance.PRESETS` (or camera
        millimetres). Pre-distortions from now on hold for the camera anywhere within that many mm (the robust
        solve on the views around it: a few more probes the first time). Returns one sentence."""
        from .tolerance import PRESETS, Tolerance, views
        mm = PRESETS.get(preset, preset)
        try:
            self.placement = Tolerance.of(float(mm))
        except (TypeError, ValueError) as e:
            raise ServiceError(f"Camera placement: choose one of {', '.join(PRESETS)}, or a number of mm "
                               f"({e})".replace("\n", " ")) from None
        if self.placement.exact:
            return "Pre-distorting for the camera's exact place."
        return (f"Pre-distorting for the camera anywhere within ±{self.placement.camera_mm:g} mm of its place "
                f"(one texture for all: a little worse at the exact spot, much better around it). The first "
                f"time, {len(views(self.placement)) - 1} more views of the scene are measured (at 128² about "
                f"2 min on a 2-core machine), then cached.")

    def stand_map(self):
        """Where one may stand with the last pre-distortion: ``(PIL image, sentence)`` — the predicted ratio over
        camera offsets within the placement's box (±3 mm for the exact spot), from the transports, no renders
        (:func:`predistort.standmap.stand_map`)."""
        from .standmap import MAP_BOX_MM, stand_map
        results = self.results
        if not results:
            raise ServiceError(self.keep_note or "Pre-distort a picture first: the map judges the last pre-distorted "
                                                 "texture.")
        c = results[-1].comparison
        box = (self.placement.camera_mm if self.placement is not None else 0) or MAP_BOX_MM
        scene = self.scene.replace(resolution=int(c.target.shape[0]))
        try:
            stand = stand_map(scene, c.predistorted[None], c.target[None], box_mm=box)
        except ValueError as e:
            raise ServiceError(str(e)) from None
        return stand.image(), stand.line()

    def correctability(self):
        """Where in the picture no texture can remove the error, for this session's scene: ``(PIL image,
        sentence)`` — drawn over the last render without pre-distortion when there is one."""
        from .correctability import correctability
        from .solve import transport_for
        transport = transport_for(self.scene, renderer=renderer_for(self.scene))
        results = self.results
        last = results[-1].comparison if results else None
        background = last.initial.numpy() if last is not None and last.initial.shape[0] == self.scene.resolution \
            else None
        advice = self.advice
        if advice is not None and advice.setup.replace(resolution=self.resolution).to_scene() != self.scene:
            advice = None
        return correctability(transport, background=background, advice=advice)

    def print_files(self, paper=None):
        """The last pre-distorted texture as a PDF and a PNG at the print's true size for this session's setup:
        ``(pdf path, png path)``. `paper` (``a4``, ``letter``, ... or ``WxH`` mm): the PDF on sheets of that
        paper, one when it fits, else tiles and an assembly sheet (:mod:`predistort.paper`)."""
        from .printout import write_print
        results = self.results
        if not results:
            raise ServiceError(self.keep_note or "Pre-distort a picture first: the print is the last pre-distorted "
                                                 "texture.")
        texture = results[-1].comparison.predistorted
        setup = self.setup().replace(resolution=int(texture.shape[0]))
        pdf, png = write_print(texture, setup, self.folder / "print", paper=_paper(paper))
        return str(pdf), str(png)

    # -- calibration from one photo of the chart (predistort.chart, predistort.calibrate) -------------------
    def _calibration_scene(self):
        """The nominal scene the chart is made for and the fit starts from: the setup as measured, its camera
        taking a phone's 4:3 picture when the setup states no film of its own (the chart's markers sit where
        that picture sees the print), at :data:`CHART_RESOLUTION` texels or more."""
        scene = self.nominal or self.scene
        if scene.film_width is None:
            r = max(scene.resolution, CHART_RESOLUTION)
            scene = scene.replace(resolution=r, film_width=r, film_height=max(8, round(r * 3 / 4)))
        return scene

    def chart_files(self):
        """The calibration chart of this session's setup, to print in place of the picture: ``(PNG path, PDF
        path)`` (:func:`predistort.chart.write_chart`; the PDF at the print's true size)."""
        from .chart import write_chart
        try:
            png, pdf = write_chart(self._calibration_scene(), self.folder / "chart")
        except ValueError as e:
            raise ServiceError(str(e)) from None
        return str(png), str(pdf)

    def calibrate(self, photo, progress=None):
        """Fit where the camera, the ball and the print really are from one `photo` (a path) of the printed
        chart through the ball (:func:`predistort.calibrate.calibrate`), and pre-distort for the fitted scene
        from now on: the instant solve on its light transport (and the placement's tolerance around it).
        ``progress(fraction, message)`` hears the fit. Returns the Calibration; a photo that cannot be used
        raises ServiceError with the sentence of what to do."""
        from .calibrate import calibrate
        from .layers import instant_model
        from .solve import transport_for
        if self.training:
            raise ServiceError("A training is running in this session: stop it first, then calibrate.")
        nominal = self.nominal or self.scene
        try:
            fitted = calibrate(self._calibration_scene(), photo, progress=progress)
        except ValueError as e:                  # CalibrationError, ImageError: one sentence, what to do
            raise ServiceError(str(e)) from None
        scene = fitted.scene
        model = instant_model(transport_for(scene, renderer=renderer_for(scene))).eval()
        self._use(model, "the instant solve for your calibrated setup")
        self.results, self.calibration, self.nominal = [], fitted, nominal
        return fitted

    def fitted_scene_file(self):
        """The calibrated scene as JSON (what ``python -m predistort apply --scene`` takes): its path."""
        if self.calibration is None:
            raise ServiceError("Calibrate first: upload a photo of the printed chart through the ball.")
        path = self.folder / "calibration" / "fitted.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.calibration.scene.save(path)
        return str(path)

    def check_print(self, photo, progress=None):
        """How close a photo of the printed pre-distortion (from the calibrated spot) is to what the picture
        should look like (:func:`predistort.check.check`): the CheckResult — ratio, map, whether to
        re-calibrate, a corrected texture when the error is systematic. Judges the last pre-distortion."""
        from .check import check
        if self.calibration is None:
            raise ServiceError("Calibrate first: the check compares the photo with the calibrated setup.")
        results = self.results
        if not results:
            raise ServiceError(self.keep_note or "Pre-distort a picture for the calibrated setup first, print it, "
                                                 "and photograph the print through the ball.")
        c = results[-1].comparison
        scene = self.scene.replace(resolution=int(c.predistorted.shape[0]))
        try:
            return check(scene, photo, c.target, printed=c.predistorted, progress=progress)
        except ValueError as e:
            raise ServiceError(str(e)) from None


def _paper(paper):
    """A paper name (or ``WxH`` mm) as given, None for none ("" or "one page"); a ServiceError naming the choices
    for anything else."""
    if not paper or str(paper).strip().lower() in ("", "none", "one page"):
        return None
    from .paper import paper_size
    try:
        paper_size(paper)
    except ValueError as e:
        raise ServiceError(str(e).replace("--paper", "paper")) from None
    return str(paper).strip().lower()
