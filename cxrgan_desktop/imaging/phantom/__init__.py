"""The chest phantom: procedural PA chest radiographs with exact ChestX-ray14 labels.

Why: the project's tests, demos and benchmarks need chest images with known labels, and real
radiographs cannot ship with it. The phantom draws a plausible adult chest (body, lungs with
vessel markings, heart and mediastinum, domes, ribs, clavicles, spine, shoulders, breast
shadows, texture and noise) with patient-to-patient variation, and renders each of the 14
findings in a recognisable, label-faithful way (see ``findings.py`` for each one). A patient
can be radiographed again (``followup.py``): the same anatomy, another position, breath,
exposure and findings.

Modules: ``anatomy`` (patient geometry), ``skeleton``,
``vessels``, ``softtissue`` (airway, hila, aorta, arms, breasts, abdomen), ``findings``
(plan) and ``lesions`` (drawing), ``render`` (composition), ``raster`` (drawing
primitives), ``followup`` (later films of a patient). The label distribution is in
``labels.distribution``; writing a labelled folder of patients is the ``tasks.phantom`` job.
"""

from cxrgan_desktop.imaging.phantom.anatomy import FIELD_OF_VIEW_MM, Anatomy
from cxrgan_desktop.imaging.phantom.findings import Lesion
from cxrgan_desktop.imaging.phantom.followup import (
    PhantomPatient,
    Visit,
    phantom_patient,
    render_follow_up,
)
from cxrgan_desktop.imaging.phantom.render import (
    RenderedPhantom,
    patient_anatomy,
    render_phantom,
    render_phantom_detailed,
)

__all__ = [
    "FIELD_OF_VIEW_MM",
    "Anatomy",
    "Lesion",
    "PhantomPatient",
    "RenderedPhantom",
    "Visit",
    "patient_anatomy",
    "phantom_patient",
    "render_follow_up",
    "render_phantom",
    "render_phantom_detailed",
]
