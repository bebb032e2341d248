"""What the notebooks call: Colab detection, Drive paths and smoke plans (colab), and what a person sees in a
notebook: sample grids, loss plots, the sampling panel, rendered reports (ui)."""
