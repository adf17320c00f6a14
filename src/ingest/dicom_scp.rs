//! (in progress: C-STORE SCP)
