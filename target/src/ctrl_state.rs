//! Controller enable/shutdown states as an explicit transition table
//! (NVMe Base 2.0 §3.5.1 initialization, §3.6 shutdown; NVMe-oF 1.1 §3.5: the host drives
//! CC through Property Set and watches CSTS through Property Get).

/// Where a controller is in its register-level life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlState {
    /// CC.EN = 0, CSTS.RDY = 0: only Fabrics commands are accepted.
    Disabled,
    /// CC.EN = 1, CSTS.RDY = 1: admin and I/O commands are processed.
    Ready,
    /// CC.SHN written; backends are being flushed. CSTS.SHST = 01b.
    ShuttingDown,
    /// Flush finished. CSTS.SHST = 10b.
    ShutDown,
    /// The host enabled the controller with CC values it cannot honor. CSTS.CFS = 1.
    Fatal,
}

/// What the host (or the flush that shutdown started) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlEvent {
    /// CC.EN 0 -> 1 with acceptable IOSQES/IOCQES/MPS/CSS.
    Enable,
    /// CC.EN 0 -> 1 with values the controller does not support.
    EnableInvalid,
    /// CC.EN 1 -> 0: a controller reset.
    Disable,
    /// CC.SHN set to normal or abrupt shutdown.
    Shutdown,
    /// The flush started by `Shutdown` completed.
    ShutdownDone,
}

pub const ALL_STATES: [CtrlState; 5] = [
    CtrlState::Disabled,
    CtrlState::Ready,
    CtrlState::ShuttingDown,
    CtrlState::ShutDown,
    CtrlState::Fatal,
];
pub const ALL_EVENTS: [CtrlEvent; 5] = [
    CtrlEvent::Enable,
    CtrlEvent::EnableInvalid,
    CtrlEvent::Disable,
    CtrlEvent::Shutdown,
    CtrlEvent::ShutdownDone,
];

/// The whole table. Every (state, event) pair is spelled out; there is no default arm.
pub fn transition(state: CtrlState, event: CtrlEvent) -> CtrlState {
    use CtrlEvent as E;
    use CtrlState as S;
    match (state, event) {
        (S::Disabled, E::Enable) => S::Ready,
        (S::Disabled, E::EnableInvalid) => S::Fatal,
        (S::Disabled, E::Disable) => S::Disabled,
        // Shutdown of a disabled controller has nothing to flush (NVMe Base 2.0 §3.6.1).
        (S::Disabled, E::Shutdown) => S::ShutDown,
        (S::Disabled, E::ShutdownDone) => S::Disabled,

        (S::Ready, E::Enable) => S::Ready,
        (S::Ready, E::EnableInvalid) => S::Ready,
        (S::Ready, E::Disable) => S::Disabled,
        (S::Ready, E::Shutdown) => S::ShuttingDown,
        (S::Ready, E::ShutdownDone) => S::Ready,

        (S::ShuttingDown, E::Enable) => S::ShuttingDown,
        (S::ShuttingDown, E::EnableInvalid) => S::ShuttingDown,
        (S::ShuttingDown, E::Disable) => S::Disabled,
        (S::ShuttingDown, E::Shutdown) => S::ShuttingDown,
        (S::ShuttingDown, E::ShutdownDone) => S::ShutDown,

        // After shutdown the host must reset (clear EN) before enabling again.
        (S::ShutDown, E::Enable) => S::ShutDown,
        (S::ShutDown, E::EnableInvalid) => S::ShutDown,
        (S::ShutDown, E::Disable) => S::Disabled,
        (S::ShutDown, E::Shutdown) => S::ShutDown,
        (S::ShutDown, E::ShutdownDone) => S::ShutDown,

        // Only a reset clears a fatal status (NVMe Base 2.0 §3.1.3.6, CSTS.CFS).
        (S::Fatal, E::Enable) => S::Fatal,
        (S::Fatal, E::EnableInvalid) => S::Fatal,
        (S::Fatal, E::Disable) => S::Disabled,
        (S::Fatal, E::Shutdown) => S::Fatal,
        (S::Fatal, E::ShutdownDone) => S::Fatal,
    }
}

impl CtrlState {
    /// CSTS as the host reads it: RDY bit 0, CFS bit 1, SHST bits 3:2.
    pub fn csts(self) -> u32 {
        const RDY: u32 = 1;
        const CFS: u32 = 1 << 1;
        const SHST_OCCURRING: u32 = 0b01 << 2;
        const SHST_COMPLETE: u32 = 0b10 << 2;
        match self {
            CtrlState::Disabled => 0,
            CtrlState::Ready => RDY,
            CtrlState::ShuttingDown => RDY | SHST_OCCURRING,
            CtrlState::ShutDown => RDY | SHST_COMPLETE,
            CtrlState::Fatal => CFS,
        }
    }

    /// Whether admin (non-Fabrics) and I/O commands may be processed.
    pub fn accepts_commands(self) -> bool {
        match self {
            CtrlState::Ready => true,
            CtrlState::Disabled
            | CtrlState::ShuttingDown
            | CtrlState::ShutDown
            | CtrlState::Fatal => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CtrlEvent as E;
    use CtrlState as S;

    /// The expected table, written out independently of `transition`.
    const EXPECTED: [[CtrlState; 5]; 5] = [
        // Enable, EnableInvalid, Disable, Shutdown, ShutdownDone
        [S::Ready, S::Fatal, S::Disabled, S::ShutDown, S::Disabled], // Disabled
        [S::Ready, S::Ready, S::Disabled, S::ShuttingDown, S::Ready], // Ready
        [
            S::ShuttingDown,
            S::ShuttingDown,
            S::Disabled,
            S::ShuttingDown,
            S::ShutDown,
        ], // ShuttingDown
        [
            S::ShutDown,
            S::ShutDown,
            S::Disabled,
            S::ShutDown,
            S::ShutDown,
        ], // ShutDown
        [S::Fatal, S::Fatal, S::Disabled, S::Fatal, S::Fatal],       // Fatal
    ];

    #[test]
    fn every_state_and_event() {
        for (i, s) in ALL_STATES.iter().enumerate() {
            for (j, e) in ALL_EVENTS.iter().enumerate() {
                assert_eq!(transition(*s, *e), EXPECTED[i][j], "{s:?} x {e:?}");
            }
        }
    }

    #[test]
    fn csts_and_command_acceptance() {
        assert_eq!(S::Disabled.csts(), 0);
        assert_eq!(S::Ready.csts(), 1);
        assert_eq!(S::ShuttingDown.csts(), 0b0101);
        assert_eq!(S::ShutDown.csts(), 0b1001);
        assert_eq!(S::Fatal.csts(), 0b10);
        let accepting: Vec<_> = ALL_STATES
            .into_iter()
            .filter(|s| s.accepts_commands())
            .collect();
        assert_eq!(accepting, vec![S::Ready]);
        // A normal life: enable, shut down, flush, reset, enable again.
        let mut s = S::Disabled;
        for e in [
            E::Enable,
            E::Shutdown,
            E::ShutdownDone,
            E::Disable,
            E::Enable,
        ] {
            s = transition(s, e);
        }
        assert_eq!(s, S::Ready);
    }
}
