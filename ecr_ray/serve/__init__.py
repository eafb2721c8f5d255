"""Ray Serve applications (thin deployments over ecr_ray)."""
