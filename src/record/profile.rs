//! (in progress: vendor mapping profiles)
