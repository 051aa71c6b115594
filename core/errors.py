"""The one exception family the library raises for bad input, all defined here.

Every error a person can act on is an :class:`ExplorerError` (a ``ValueError``) whose message names the
file or object and the problem. The UI shows these as messages, never as tracebacks. Each layer raises its
own subclass, defined in this module and importable from its package as well (``core.imaging.MammogramError``,
``core.perturb.PerturbationError``, ``core.models.ModelError``, ``core.runs.RunError``,
``core.metrics.MetricsError``...):

====================  ==========================================================================
class                 raised for
====================  ==========================================================================
MammogramError        an image file or array that cannot be read as a mammogram (``core.imaging``)
NotDicomError         bytes that do not parse as DICOM at all (a MammogramError; loaders then try
                      other formats)
ManifestError         a cohort manifest that cannot be read (``core.manifest``)
PhantomError          a synthetic cohort that cannot be generated (``core.phantom``)
PerturbationError     an unusable image or parameter of a perturbation (``core.perturb``)
ModelError            a model, its weights or its input (``core.models``, ``core.training``)
PreprocessError       an image the NYU preprocessing cannot crop (a ModelError)
RunError              a run configuration, store or worker problem (``core.runs``)
MetricsError          a scores table or a metric that cannot be computed (``core.metrics``)
SpectrumError         bad input to a spectrum function (``core.spectrum``)
CalcError             bad input to a calcification function (``core.calcs``)
DisplayError          bad input to a display helper (``core.display``)
====================  ==========================================================================

Input checks shared by several modules live in :mod:`core.validate`; each raises the caller's class.
"""


class ExplorerError(ValueError):
    """Base class of all user-actionable errors raised by ``core``."""


class MammogramError(ExplorerError):
    """An image file (or array) that cannot be read as a mammogram; the message names the file and why."""


class NotDicomError(MammogramError):
    """Bytes that do not parse as a DICOM dataset at all (:func:`core.imaging.dicom.read_dicom`)."""


class ManifestError(ExplorerError):
    """A manifest (or the source it is built from) cannot be read at all."""


class PhantomError(ExplorerError):
    """A synthetic cohort cannot be generated (bad preset, bad output folder)."""


class PerturbationError(ExplorerError):
    """A perturbation was given an unusable image or parameter; the message names both."""


class ModelError(ExplorerError):
    """A model, its weights or its input cannot be used (message names the file or object and the problem)."""


class PreprocessError(ModelError):
    """An image cannot be put through the NYU preprocessing (empty breast mask, wrong shape, ...)."""


class RunError(ExplorerError):
    """A run configuration, store or worker problem; the message names the run or file and the problem."""


class MetricsError(ExplorerError):
    """A scores table or a metric request that cannot be computed; the message names the file/column."""


class SpectrumError(ExplorerError):
    """Bad input to a spectrum function (not a 2-D finite image, bad spacing, no breast region...)."""


class CalcError(ExplorerError):
    """Bad input to a calcification function (image, spacing, centre, size, radius...)."""


class DisplayError(ExplorerError):
    """Bad input to a display helper (empty array, non-positive window width, ...)."""


class AccessError(ExplorerError):
    """A server path outside the allowed roots (``core.access``), or an action a visitor may not take."""
