//! SMPP command statuses, as the SMSC writes them in a response.

use std::fmt;

/// A `command_status` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(pub u32);

impl Status {
    pub const OK: Status = Status(0x00);
    /// Message length is invalid.
    pub const INVALID_MESSAGE_LENGTH: Status = Status(0x01);
    /// Command length is invalid.
    pub const INVALID_COMMAND_LENGTH: Status = Status(0x02);
    /// Invalid command id.
    pub const INVALID_COMMAND_ID: Status = Status(0x03);
    /// Message queue full: retry later.
    pub const MESSAGE_QUEUE_FULL: Status = Status(0x14);
    /// Throttling error: the ESME exceeded its allowed message rate; retry later.
    pub const THROTTLED: Status = Status(0x58);

    /// Whether the SMSC asks to send the same message again later
    /// (`ESME_RTHROTTLED`, `ESME_RMSGQFUL`) rather than refusing it for good.
    pub fn is_retry_later(self) -> bool {
        self == Status::THROTTLED || self == Status::MESSAGE_QUEUE_FULL
    }

    /// The SMPP 3.4 name of the status, when it is one of the spec's.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "ESME_ROK",
            0x01 => "ESME_RINVMSGLEN",
            0x02 => "ESME_RINVCMDLEN",
            0x03 => "ESME_RINVCMDID",
            0x04 => "ESME_RINVBNDSTS",
            0x05 => "ESME_RALYBND",
            0x06 => "ESME_RINVPRTFLG",
            0x07 => "ESME_RINVREGDLVFLG",
            0x08 => "ESME_RSYSERR",
            0x0A => "ESME_RINVSRCADR",
            0x0B => "ESME_RINVDSTADR",
            0x0C => "ESME_RINVMSGID",
            0x0D => "ESME_RBINDFAIL",
            0x0E => "ESME_RINVPASWD",
            0x0F => "ESME_RINVSYSID",
            0x11 => "ESME_RCANCELFAIL",
            0x13 => "ESME_RREPLACEFAIL",
            0x14 => "ESME_RMSGQFUL",
            0x15 => "ESME_RINVSERTYP",
            0x33 => "ESME_RINVNUMDESTS",
            0x34 => "ESME_RINVDLNAME",
            0x40 => "ESME_RINVDESTFLAG",
            0x42 => "ESME_RINVSUBREP",
            0x43 => "ESME_RINVESMCLASS",
            0x44 => "ESME_RCNTSUBDL",
            0x45 => "ESME_RSUBMITFAIL",
            0x48 => "ESME_RINVSRCTON",
            0x49 => "ESME_RINVSRCNPI",
            0x50 => "ESME_RINVDSTTON",
            0x51 => "ESME_RINVDSTNPI",
            0x53 => "ESME_RINVSYSTYP",
            0x54 => "ESME_RINVREPFLAG",
            0x55 => "ESME_RINVNUMMSGS",
            0x58 => "ESME_RTHROTTLED",
            0x61 => "ESME_RINVSCHED",
            0x62 => "ESME_RINVEXPIRY",
            0x63 => "ESME_RINVDFTMSGID",
            0x64 => "ESME_RX_T_APPN",
            0x65 => "ESME_RX_P_APPN",
            0x66 => "ESME_RX_R_APPN",
            0x67 => "ESME_RQUERYFAIL",
            0xC0 => "ESME_RINVOPTPARSTREAM",
            0xC1 => "ESME_ROPTPARNOTALLWD",
            0xC2 => "ESME_RINVPARLEN",
            0xC3 => "ESME_RMISSINGOPTPARAM",
            0xC4 => "ESME_RINVOPTPARAMVAL",
            0xFE => "ESME_RDELIVERYFAILURE",
            0xFF => "ESME_RUNKNOWNERR",
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#04x})", self.0),
            None => write!(f, "status {:#010x}", self.0),
        }
    }
}

impl From<rusmpp::CommandStatus> for Status {
    fn from(status: rusmpp::CommandStatus) -> Status {
        Status(u32::from(status))
    }
}

impl From<Status> for rusmpp::CommandStatus {
    fn from(status: Status) -> rusmpp::CommandStatus {
        rusmpp::CommandStatus::from(status.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_show_their_spec_name() {
        assert_eq!(Status::THROTTLED.to_string(), "ESME_RTHROTTLED (0x58)");
        assert_eq!(Status(0x400).to_string(), "status 0x00000400");
        assert!(Status::MESSAGE_QUEUE_FULL.is_retry_later());
        assert!(!Status(0x45).is_retry_later());
        assert_eq!(
            Status::from(rusmpp::CommandStatus::EsmeRthrottled),
            Status::THROTTLED
        );
    }
}
