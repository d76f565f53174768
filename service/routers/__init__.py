"""The service's routers: jobs and events, pixels, the zarr store, operations."""
