"""LightningModules: thin training stages that receive their models and losses (installed as moviead.stages)."""
