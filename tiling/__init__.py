"""Tiled, distributed rendering of nanoBragg frames into OME-Zarr stores (zarr v3).

Modules: ``grid`` (tile grid, ROI, beam-centre order), ``job`` (what a store holds), ``store``
(zarr layout, tile records, attributes), ``pyramid`` (2x2 levels), ``worker`` (Dask worker plugin
and tasks), ``graph`` (the frames x tiles job on a client), ``cluster`` (embedded or remote
cluster), ``events`` (progress hook), ``cli`` (``braggtile render``).
"""
