"""User data to tensors: series loading and validation, scalers, windows, the embedded
AirPassengers data, text loaders (CSV/JSONL/Parquet, the IMDB archive) and tokenisers."""
