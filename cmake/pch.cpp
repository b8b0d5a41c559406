// Exists only so the precompiled header has a target to be built for.
