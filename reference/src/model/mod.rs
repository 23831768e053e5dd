//! The reference model (placeholder; being written).
