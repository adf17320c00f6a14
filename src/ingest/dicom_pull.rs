//! (in progress: C-FIND/C-MOVE pull)
