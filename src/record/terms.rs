//! (in progress: JED terminology)
