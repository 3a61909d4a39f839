"""Mock strong lenses: singular isothermal ellipsoid plus external shear."""
