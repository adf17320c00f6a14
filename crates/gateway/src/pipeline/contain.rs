//! Keeping one bad input from stopping the box: export refusals and caps become quarantine
//! reasons, and a panic in one item's work becomes that item's quarantine (`internal-error`)
//! instead of the end of the daemon (and, re-queued after the restart, the end of the next
//! one). Used by the daemon's stages and by `gateway deid`.

use fgw_deid::QuarantineReason;
use fgw_ingest::export::ExportError;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What an error reading an exam's attachments means for the exam: quarantined with this
/// reason (a link or special file on the way, a cap exceeded), or `None`: it goes on without
/// them, as before (unreadable or undecodable report, unlistable folder).
pub(crate) fn attachment_reason(e: &ExportError) -> Option<QuarantineReason> {
    match e {
        ExportError::Refused { .. } => Some(QuarantineReason::UnsafeEntry(e.to_string())),
        ExportError::OverLimit { .. } => Some(QuarantineReason::OverLimit(e.to_string())),
        _ => None,
    }
}

/// Why a batch whose table could not be used is quarantined.
pub(crate) fn batch_reason(e: &ExportError) -> QuarantineReason {
    attachment_reason(e).unwrap_or_else(|| QuarantineReason::InputInvalid(e.to_string()))
}

/// Run one item's work; a panic in it becomes `internal-error` naming `stage`. The panic's
/// payload is dropped unread (it may quote patient text); the panic hook
/// ([`crate::logging::install_panic_hook`]) has logged its location.
///
/// Unwind safety: the work touches the item's own data, the state database (whose writes
/// are transactions) and the gate's OCR pool (which recovers a poisoned lock), so nothing a
/// later item sees is left half-changed.
pub(crate) fn catch_item<T>(
    stage: &'static str,
    work: impl FnOnce() -> T,
) -> Result<T, QuarantineReason> {
    catch_unwind(AssertUnwindSafe(work))
        .map_err(|_payload| QuarantineReason::InternalError(format!("panic in the {stage} stage")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_internal_error_without_its_payload() {
        let r = catch_item("deid", || -> u32 { panic!("MARKER-PAYLOAD 山田 太郎 00012345") });
        let reason = r.unwrap_err();
        assert_eq!(reason.code(), "internal-error");
        let text = reason.to_string();
        assert_eq!(text, "internal-error: panic in the deid stage");
        assert!(!text.contains("MARKER") && !text.contains("山田"), "{text}");
        // Stored and read back through the state's reason column.
        assert_eq!(QuarantineReason::parse(&text), Some(reason));
        assert_eq!(catch_item("deid", || 7), Ok(7));
    }
}
