//! How the operating system schedules a worker thread.
//!
//! A worker sends each leg's frame on a 1 ms clock. Under the normal
//! time-sharing policy it waits behind any other runnable thread of the host
//! (the SIP stack, a database, a build) for up to a few milliseconds; under
//! `SCHED_FIFO` it runs as soon as its sleep ends, which is what PBXes offer
//! for their media threads (FreeSWITCH `-rp`, Asterisk `-p`). A worker that
//! cannot keep up would leave other threads only the 5 % of every second the
//! kernel keeps for them (`sched_rt_runtime_us`), so the [`OverloadGuard`]
//! steps it down to the normal policy while it is overloaded.
//!
//! Real-time scheduling needs `CAP_SYS_NICE` (or an `RLIMIT_RTPRIO`); without
//! it the worker asks for a better nice value instead, and failing that keeps
//! the normal policy. Either way it asks for a 1 µs timer slack, so that its
//! sleeps end when due rather than up to 50 µs later.

#![allow(unsafe_code)]

use std::io;
use std::time::{Duration, Instant};

/// The `SCHED_FIFO` priority of worker threads: above every normal thread,
/// below the kernel's own real-time threads (interrupt threads run at 50).
pub const REALTIME_PRIORITY: i32 = 10;

/// The nice value asked for when real-time scheduling is refused.
pub const FALLBACK_NICE: i32 = -10;

/// Timer slack of worker threads, in nanoseconds.
const TIMER_SLACK_NS: libc::c_ulong = 1_000;

/// How a worker thread ended up scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_FIFO` at this priority.
    Realtime { priority: i32 },
    /// Real-time was refused; the normal policy at this nice value.
    Nice { nice: i32 },
    /// The normal policy, as every other thread.
    Normal,
}

impl Scheduling {
    pub fn is_realtime(self) -> bool {
        matches!(self, Scheduling::Realtime { .. })
    }
}

impl std::fmt::Display for Scheduling {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheduling::Realtime { priority } => {
                write!(formatter, "SCHED_FIFO priority {priority}")
            }
            Scheduling::Nice { nice } => write!(formatter, "normal, nice {nice}"),
            Scheduling::Normal => formatter.write_str("normal"),
        }
    }
}

/// What a worker thread asked for and got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulingReport {
    pub scheduling: Scheduling,
    /// Why a better scheduling was refused, when one was: the operating
    /// system's error for real-time and for the nice value.
    pub refused: Option<String>,
}

/// Sets the calling thread's scheduling: real-time when `realtime` is asked
/// and allowed, else a better nice value when allowed, else unchanged.
pub(crate) fn configure_current_thread(realtime: bool) -> SchedulingReport {
    set_timer_slack();
    if !realtime {
        return SchedulingReport {
            scheduling: Scheduling::Normal,
            refused: None,
        };
    }
    let fifo = match set_fifo(REALTIME_PRIORITY) {
        Ok(()) => {
            return SchedulingReport {
                scheduling: Scheduling::Realtime {
                    priority: REALTIME_PRIORITY,
                },
                refused: None,
            };
        }
        Err(error) => error,
    };
    match set_nice(FALLBACK_NICE) {
        Ok(()) => SchedulingReport {
            scheduling: Scheduling::Nice {
                nice: FALLBACK_NICE,
            },
            refused: Some(format!("SCHED_FIFO: {fifo}")),
        },
        Err(nice) => SchedulingReport {
            scheduling: Scheduling::Normal,
            refused: Some(format!("SCHED_FIFO: {fifo}; nice {FALLBACK_NICE}: {nice}")),
        },
    }
}

/// How long a real-time worker's CPU share is measured over.
pub(crate) const GUARD_WINDOW: Duration = Duration::from_secs(1);

/// A real-time worker that used this share of a core over a window is
/// overloaded (it hardly ever sleeps between ticks): it steps down to the
/// normal policy. A busy worker that keeps up stays under it (2,000 legs
/// with echoed audio take about 70 % of a core), and it is under the 95 %
/// the kernel leaves a real-time thread when normal threads wait for its
/// core, or the guard could never fire when it matters.
const STEP_DOWN_SHARE: f64 = 0.93;

/// A stepped-down worker that used at most this share goes back up.
const STEP_UP_SHARE: f64 = 0.75;

/// What an [`OverloadGuard`] asks of its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardAction {
    /// Leave real-time scheduling: the thread can no longer keep up, and a
    /// real-time thread that never sleeps holds everything else of the
    /// host, the SIP stack included, off its core for 950 ms of each second.
    StepDown,
    /// The load has passed: real-time scheduling again.
    StepUp,
}

/// Watches a real-time worker's own CPU share, sans-IO: fed the time and
/// the thread's CPU time, it says when to step down and back up.
#[derive(Debug)]
pub(crate) struct OverloadGuard {
    window_began: Instant,
    cpu_at_window: Duration,
    stepped_down: bool,
}

impl OverloadGuard {
    pub(crate) fn new(now: Instant, cpu: Duration) -> OverloadGuard {
        OverloadGuard {
            window_began: now,
            cpu_at_window: cpu,
            stepped_down: false,
        }
    }

    /// Takes the time and the thread's CPU time; at the end of each window,
    /// what to change, if anything.
    pub(crate) fn observe(&mut self, now: Instant, cpu: Duration) -> Option<GuardAction> {
        let wall = now.saturating_duration_since(self.window_began);
        if wall < GUARD_WINDOW {
            return None;
        }
        let share = cpu.saturating_sub(self.cpu_at_window).as_secs_f64() / wall.as_secs_f64();
        self.window_began = now;
        self.cpu_at_window = cpu;
        if !self.stepped_down && share >= STEP_DOWN_SHARE {
            self.stepped_down = true;
            Some(GuardAction::StepDown)
        } else if self.stepped_down && share <= STEP_UP_SHARE {
            self.stepped_down = false;
            Some(GuardAction::StepUp)
        } else {
            None
        }
    }
}

/// Carries out a guard's action on the calling thread: down to the normal
/// policy at the fallback nice value, or back to `SCHED_FIFO`. Whether the
/// thread is real-time afterwards.
pub(crate) fn apply_guard_action(action: GuardAction) -> bool {
    match action {
        GuardAction::StepDown => {
            if set_normal().is_err() {
                return true;
            }
            let _ = set_nice(FALLBACK_NICE);
            false
        }
        GuardAction::StepUp => set_fifo(REALTIME_PRIORITY).is_ok(),
    }
}

/// The CPU time the calling thread has used, when the system tells.
#[cfg(target_os = "linux")]
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, initialised timespec that outlives the call,
    // which writes only to it.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if result != 0 {
        return None;
    }
    let seconds = u64::try_from(time.tv_sec).ok()?;
    let nanos = u32::try_from(time.tv_nsec).ok()?;
    Some(Duration::new(seconds, nanos))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(target_os = "linux")]
fn set_normal() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as in `set_fifo`.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_normal() -> io::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn set_fifo(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid, initialised `sched_param` that outlives the
    // call, and pid 0 names the calling thread; the call reads nothing else.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: gettid has no preconditions and cannot fail.
    let thread = unsafe { libc::gettid() };
    let Ok(thread) = libc::id_t::try_from(thread) else {
        return Err(io::Error::other("thread id out of range"));
    };
    // SAFETY: plain integer arguments; on Linux, PRIO_PROCESS with a thread
    // id sets that thread's nice value only.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, thread, nice) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn set_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no
    // memory of ours. A refusal leaves the default slack, which only costs
    // precision, so the result is not needed.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_fifo(_priority: i32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "real-time scheduling of media threads is only set up on Linux",
    ))
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "per-thread nice values are only set on Linux",
    ))
}

#[cfg(not(target_os = "linux"))]
fn set_timer_slack() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's policy and nice value.
    fn current() -> (i32, i32) {
        // SAFETY: pid 0 names the calling thread; no memory is passed.
        let policy = unsafe { libc::sched_getscheduler(0) };
        // SAFETY: as above; -1 is a valid nice value, and errno is not needed.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        (policy, nice)
    }

    #[test]
    fn an_overloaded_worker_steps_down_and_back_up_once_the_load_passes() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let cpu = Duration::from_millis;
        let mut guard = OverloadGuard::new(start, cpu(0));
        // Within a window nothing is decided, however busy.
        assert_eq!(guard.observe(at(500), cpu(500)), None);
        // 90 % of a core: busy, not overloaded.
        assert_eq!(guard.observe(at(1000), cpu(900)), None);
        // 95 %, all the kernel gives a real-time thread: step down, once.
        assert_eq!(
            guard.observe(at(2000), cpu(1850)),
            Some(GuardAction::StepDown)
        );
        assert_eq!(guard.observe(at(3000), cpu(2840)), None);
        // 85 %: still too busy to go back.
        assert_eq!(guard.observe(at(4000), cpu(3690)), None);
        // 70 %: back up.
        assert_eq!(
            guard.observe(at(5000), cpu(4390)),
            Some(GuardAction::StepUp)
        );
        assert_eq!(guard.observe(at(6000), cpu(4490)), None);
    }

    #[test]
    fn the_guard_changes_the_threads_policy() {
        let (got_realtime, down, after_down, up, after_up) = std::thread::spawn(|| {
            let got = configure_current_thread(true).scheduling.is_realtime();
            let down = apply_guard_action(GuardAction::StepDown);
            let after_down = current();
            let up = apply_guard_action(GuardAction::StepUp);
            (got, down, after_down, up, current())
        })
        .join()
        .expect("the thread ran");
        assert!(!down);
        assert_eq!(after_down.0, libc::SCHED_OTHER);
        // Back up exactly when the thread may be real-time at all.
        assert_eq!(up, got_realtime);
        let expected = if got_realtime {
            libc::SCHED_FIFO
        } else {
            libc::SCHED_OTHER
        };
        assert_eq!(after_up.0, expected);
    }

    #[test]
    fn a_threads_cpu_time_counts_its_work() {
        let before = thread_cpu_time().expect("Linux tells a thread's CPU time");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let after = thread_cpu_time().expect("Linux tells a thread's CPU time");
        assert!(
            after > before,
            "{before:?} then {after:?} after summing to {x}"
        );
    }

    #[test]
    fn a_thread_not_asked_to_be_realtime_keeps_its_scheduling() {
        let report = std::thread::spawn(|| {
            let before = current();
            let report = configure_current_thread(false);
            assert_eq!(current(), before);
            report
        })
        .join()
        .expect("the thread ran");
        assert_eq!(
            report,
            SchedulingReport {
                scheduling: Scheduling::Normal,
                refused: None,
            }
        );
    }

    #[test]
    fn a_realtime_thread_gets_fifo_or_says_why_not() {
        let (report, after) = std::thread::spawn(|| {
            let report = configure_current_thread(true);
            (report, current())
        })
        .join()
        .expect("the thread ran");
        match report.scheduling {
            Scheduling::Realtime { priority } => {
                assert_eq!(priority, REALTIME_PRIORITY);
                assert_eq!(after.0, libc::SCHED_FIFO);
                assert_eq!(report.refused, None);
            }
            Scheduling::Nice { nice } => {
                assert_eq!(after, (libc::SCHED_OTHER, nice));
                assert!(
                    report
                        .refused
                        .is_some_and(|why| why.starts_with("SCHED_FIFO: "))
                );
            }
            Scheduling::Normal => {
                assert_eq!(after.0, libc::SCHED_OTHER);
                assert!(report.refused.is_some_and(|why| why.contains("nice -10")));
            }
        }
    }

    /// Without the privilege (as in most containers) the fallbacks are
    /// tried and the refusals reported: run in a thread that gave the
    /// privilege up.
    #[test]
    fn a_thread_refused_realtime_falls_back_and_reports_the_refusal() {
        let report = std::thread::spawn(|| {
            drop_sys_nice();
            configure_current_thread(true)
        })
        .join()
        .expect("the thread ran");
        assert_eq!(report.scheduling, Scheduling::Normal);
        let refused = report.refused.expect("the refusals are reported");
        assert!(
            refused.starts_with("SCHED_FIFO: ") && refused.contains("; nice -10: "),
            "{refused}"
        );
    }

    /// Takes CAP_SYS_NICE out of the calling thread's effective set (it is
    /// per thread on Linux), and lowers the process's soft limits that would
    /// allow real-time and negative nice values without it. No other test
    /// depends on those limits: a thread with the capability ignores them.
    fn drop_sys_nice() {
        let mut header = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let mut data = [CapData::default(); 2];
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: header and data have the kernel's version 3 layout (two
        // data words) and outlive the calls; the rlimit calls read `limit`
        // and `none`, which outlive them.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
                0
            );
            data[0].effective &= !(1 << 23); // CAP_SYS_NICE
            assert_eq!(
                libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
                0
            );
            for resource in [libc::RLIMIT_RTPRIO, libc::RLIMIT_NICE] {
                let mut limit = none;
                assert_eq!(libc::getrlimit(resource, &mut limit), 0);
                limit.rlim_cur = 0;
                assert_eq!(libc::setrlimit(resource, &limit), 0);
            }
        }
    }

    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
}
