// Placeholder for a layer of src/ that has no sources yet.
