"""Code shared by the notebooks: each module has one job (see README, "Helpers")."""
