"""core: the edges and the shared types (params, files, git/GTO, DVC, MLflow, statistics,
the model directory, the features both training and serving build). Imports only core."""
