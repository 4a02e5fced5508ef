"""The live viewer: Qt window, vispy canvas, overlays composited on the GPU, readouts and plots.

Everything under ``liveaug.viewer`` may import Qt and vispy; nothing in the core imports this
package. Entry points: :func:`liveaug.viewer.app.run_viewer` (used by ``liveaug demo``, ``view``
and ``replay``) and :class:`liveaug.viewer.window.ViewerWindow`.
"""
