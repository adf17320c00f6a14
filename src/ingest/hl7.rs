//! (in progress: HL7 v2 over MLLP)
