//! (in progress)
use super::*;
use crate::record::RawExam;
pub fn deidentify_exam(_exam: &RawExam, _ctx: &DeidContext) -> DeidOutcome { let _ = DeidPackage::seal; todo!() }
