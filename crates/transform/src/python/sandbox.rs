//! The confinement of every `python3` process Sluice starts for a user's script (the workers, and the
//! check made when a pipeline is saved), put in place between `fork` and `exec`, so that the interpreter
//! never runs a line without it. The layers, and why each is there, are described in `SECURITY.md`:
//!
//! 1. **Another user.** When Sluice runs as root, the process switches to `SLUICE_SCRIPT_USER`
//!    (`nobody` by default; a name, or `uid:gid`) with that user's primary group and no supplementary
//!    groups, so file permissions keep it out of the data directory (0700, owned by Sluice's user).
//! 2. **`PR_SET_NO_NEW_PRIVS`**: nothing it executes can gain privileges (set-user-ID programs).
//! 3. **Landlock** (Linux 5.13+; degrades, with one log line, where the kernel lacks it): it may read and
//!    execute only the Python installation and the system libraries; it may write, create or remove no
//!    file anywhere, connect or bind no TCP port, and signal no process outside itself.
//! 4. **seccomp** (x86-64): system calls that start threads or processes, execute programs (except the one
//!    `execve` that starts the interpreter, recognised by the address of its path), open sockets, create,
//!    change or remove files, write to descriptors other than 0–2, install signal handlers (which would
//!    hand a script the interpreter's frames) or send signals are refused with `EPERM`.
//! 5. **Resource limits**: address space, no process (`RLIMIT_NPROC` 0, set after the user switch, so it
//!    binds), no file size, no core dump; the worker dies with the thread that started it.
//!
//! Which interpreter runs is decided once per interpreter name: the first on `PATH` whose real program
//! the script user can reach (a `python3` under root's home is skipped when workers run as `nobody`),
//! resolved to the executable itself (a version manager's shim would need to execute more programs).

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// The setting naming the user scripts run as when Sluice runs as root.
pub const USER_VAR: &str = "SLUICE_SCRIPT_USER";
/// The user scripts run as when the setting is absent.
pub const DEFAULT_USER: &str = "nobody";
/// How long asking an interpreter where it lives may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the interpreter for its executable and library folders; runs no user code.
const PROBE: &str = "import sys, json\nsys.stdout.write(json.dumps({'executable': sys.executable, 'prefixes': [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix], 'path': sys.path}))\n";

/// Why no sandboxed interpreter can be started.
#[derive(Debug, Clone)]
pub(crate) enum Unavailable {
    /// No interpreter by that name (or none the script user can reach, said in the text).
    NotFound(String),
    /// Anything else, as a message.
    Other(String),
}

impl Unavailable {
    pub(crate) fn message(&self, interpreter: &str) -> String {
        match self {
            Unavailable::NotFound(detail) if detail.is_empty() => format!(
                "Python transformations need `{interpreter}` on the machine running Sluice, and it was not found"
            ),
            Unavailable::NotFound(detail) => format!(
                "Python transformations need `{interpreter}` on the machine running Sluice, and it was not found {detail}"
            ),
            Unavailable::Other(m) => m.clone(),
        }
    }
}

/// What the confinement of a process achieves on this machine, decided once per interpreter.
pub(crate) struct Sandbox {
    /// The interpreter's executable; its address is the only path `execve` accepts once confined.
    exe: CString,
    /// Owns what `envp` points to.
    _envp_store: Vec<CString>,
    envp: Vec<*const libc::c_char>,
    /// The user and group to switch to (Sluice runs as root), or none.
    user: Option<(u32, u32)>,
    landlock: Option<OwnedFd>,
    /// The seccomp program (empty where unsupported), and the instructions where the process's own id
    /// goes (known only in the child).
    filter: Vec<libc::sock_filter>,
    pid_slots: Vec<usize>,
}

// SAFETY: the raw pointers point into `envp_store` and `exe`, owned by the same value and never changed
// after construction; they are only read (by `execve` in a forked child).
unsafe impl Send for Sandbox {}
unsafe impl Sync for Sandbox {}

impl Sandbox {
    /// The sandbox for an interpreter name (looked up on `PATH`) or path; made once per process.
    pub(crate) fn get(interpreter: &str) -> Result<Arc<Sandbox>, Unavailable> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Sandbox>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(s) = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(interpreter)
        {
            return Ok(s.clone());
        }
        // Failures are not kept: Python may be installed while Sluice runs.
        let made = Arc::new(Sandbox::make(interpreter)?);
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(interpreter.to_string(), made.clone());
        Ok(made)
    }

    fn make(interpreter: &str) -> Result<Sandbox, Unavailable> {
        let user = script_user().map_err(Unavailable::Other)?;
        let found = find_interpreter(interpreter, user)?;
        let mut readable: Vec<PathBuf> = SYSTEM_READABLE.iter().map(PathBuf::from).collect();
        readable.push(found.executable.clone());
        for prefix in &found.prefixes {
            readable.push(prefix.join("lib"));
            readable.push(prefix.join("lib64"));
        }
        readable.extend(found.path.iter().cloned());
        let landlock = landlock_ruleset(&readable).map_err(Unavailable::Other)?;
        if landlock.is_none() {
            static ONCE: Once = Once::new();
            ONCE.call_once(|| {
                tracing::warn!(
                    "Landlock is not available on this kernel: Python workers are not confined to the Python installation by path (file permissions, the script user, seccomp and the worker's own guards still apply)"
                )
            });
        }
        let exe = CString::new(found.executable.as_os_str().as_bytes())
            .map_err(|_| Unavailable::Other("the interpreter's path contains a NUL byte".into()))?;
        let (filter, pid_slots) = seccomp_program(exe.as_ptr() as u64);
        if filter.is_empty() {
            static ONCE: Once = Once::new();
            ONCE.call_once(|| {
                tracing::warn!(
                    "no seccomp filter for this processor architecture: Python workers can start threads and processes as far as their user's limits allow"
                )
            });
        }
        let envp_store = vec![CString::new("LC_ALL=C.UTF-8").expect("no NUL")];
        let mut envp: Vec<*const libc::c_char> = envp_store.iter().map(|s| s.as_ptr()).collect();
        envp.push(std::ptr::null());
        Ok(Sandbox {
            exe,
            _envp_store: envp_store,
            envp,
            user,
            landlock,
            filter,
            pid_slots,
        })
    }

    /// The interpreter's executable.
    pub(crate) fn executable(&self) -> &Path {
        Path::new(OsStr::from_bytes(self.exe.as_bytes()))
    }

    /// A command that starts the interpreter with `args` confined, in `/`, with an empty environment
    /// (only `LC_ALL`) and an address space of `memory` bytes. Piped stdio is the caller's to set.
    pub(crate) fn command(self: &Arc<Self>, args: &[&str], memory: u64) -> Command {
        let mut command = Command::new(self.executable());
        command
            .args(args)
            .env_clear()
            .env("LC_ALL", "C.UTF-8")
            .current_dir("/")
            // Its own process group: a terminal's Ctrl-C does not reach it (a signal is a way in).
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.user {
            // std switches group then user before the closure below runs, and drops supplementary
            // groups when it starts as root.
            command.gid(gid).uid(uid);
        }
        let mut argv_store = vec![self.exe.clone()];
        argv_store.extend(
            args.iter()
                .map(|a| CString::new(*a).expect("no NUL in arguments")),
        );
        let mut argv: Vec<*const libc::c_char> = argv_store.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut launch = Launch {
            sandbox: self.clone(),
            _argv_store: argv_store,
            argv,
            filter: self.filter.clone(),
            memory,
            // SAFETY: getpid has no preconditions.
            parent: unsafe { libc::getpid() },
        };
        // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
        // calls (setrlimit, signal, prctl, getpid, landlock, seccomp, execve) on memory prepared before
        // the fork; it allocates nothing.
        unsafe {
            command.pre_exec(move || launch.confine_and_exec());
        }
        command
    }
}

/// What one start needs in the child, prepared before the fork.
struct Launch {
    sandbox: Arc<Sandbox>,
    /// Owns what `argv` points to.
    _argv_store: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    filter: Vec<libc::sock_filter>,
    memory: u64,
    /// Sluice's process id, to notice that it ended before the death signal was set.
    parent: libc::pid_t,
}

// SAFETY: as for `Sandbox`: the pointers point into `argv_store`, owned alongside and never changed.
unsafe impl Send for Launch {}
unsafe impl Sync for Launch {}

impl Launch {
    /// In the child: every layer, then `execve`. Any failure aborts the start (the caller sees the error
    /// and no interpreter runs unconfined).
    fn confine_and_exec(&mut self) -> std::io::Result<()> {
        set_limit(libc::RLIMIT_AS, self.memory)?;
        // After the user switch (done by std before this runs), so that it binds the script user; set
        // before it, exec would fail for a user already over the limit.
        set_limit(libc::RLIMIT_NPROC, 0)?;
        set_limit(libc::RLIMIT_FSIZE, 0)?;
        set_limit(libc::RLIMIT_CORE, 0)?;
        // SAFETY: plain system calls on values of this stack or prepared before the fork.
        unsafe {
            // Writing past RLIMIT_FSIZE fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            // The signal comes when the *thread* that started the process ends; runners start their
            // workers from the thread that evaluates, which outlives them. Set after the user switch,
            // which clears it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != self.parent {
                return Err(std::io::Error::other(
                    "Sluice ended while the worker started",
                ));
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(ruleset) = &self.sandbox.landlock {
                if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if !self.filter.is_empty() {
                let pid = libc::getpid() as u32;
                for &i in &self.sandbox.pid_slots {
                    self.filter[i].k = pid;
                }
                let program = libc::sock_fprog {
                    len: self.filter.len() as u16,
                    filter: self.filter.as_mut_ptr(),
                };
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0u32,
                    &program as *const libc::sock_fprog,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::execve(
                self.sandbox.exe.as_ptr(),
                self.argv.as_ptr(),
                self.sandbox.envp.as_ptr(),
            );
        }
        Err(std::io::Error::last_os_error())
    }
}

fn set_limit(resource: LimitResource, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct it is given; it is async-signal-safe.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type LimitResource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type LimitResource = libc::c_int;

/// The user to switch to: `None` when Sluice does not run as root (it cannot switch; said once).
fn script_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            tracing::info!(
                "Sluice does not run as root, so Python workers keep its user (they cannot switch to {USER_VAR}); Landlock, seccomp and resource limits still confine them"
            )
        });
        return Ok(None);
    }
    let name = std::env::var(USER_VAR).unwrap_or_default();
    let name = if name.trim().is_empty() {
        DEFAULT_USER.to_string()
    } else {
        name.trim().to_string()
    };
    let (uid, gid) = lookup_user(&name)?;
    if uid == 0 || gid == 0 {
        return Err(format!(
            "{USER_VAR} names `{name}`, which is root or in root's group: Python workers must run as an unprivileged user"
        ));
    }
    Ok(Some((uid, gid)))
}

/// A user name (its uid and primary group) or `uid:gid`.
fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    if let Some((u, g)) = name.split_once(':') {
        if let (Ok(u), Ok(g)) = (u.parse(), g.parse()) {
            return Ok((u, g));
        }
    }
    let missing = || {
        format!(
            "the user `{name}` that Python workers run as ({USER_VAR}) does not exist on this machine; create it or name another unprivileged user (or `uid:gid`)"
        )
    };
    let cname = CString::new(name).map_err(|_| missing())?;
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    // SAFETY: zeroed is a valid passwd (pointers null, numbers zero); getpwnam_r fills it and points its
    // strings into `buf`, which outlives the reads below.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(missing());
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

/// Where an interpreter lives, as it says itself.
struct Found {
    executable: PathBuf,
    prefixes: Vec<PathBuf>,
    path: Vec<PathBuf>,
}

fn find_interpreter(interpreter: &str, user: Option<(u32, u32)>) -> Result<Found, Unavailable> {
    let candidates: Vec<PathBuf> = if interpreter.contains('/') {
        vec![PathBuf::from(interpreter)]
    } else {
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(interpreter))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut unreachable = Vec::new();
    let mut last_error = None;
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        if let Some((uid, gid)) = user {
            if !reachable(&candidate, uid, gid) {
                unreachable.push(candidate.display().to_string());
                continue;
            }
        }
        let found = match probe(&candidate) {
            Ok(f) => f,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        if let Some((uid, gid)) = user {
            if !reachable(&found.executable, uid, gid) {
                unreachable.push(found.executable.display().to_string());
                continue;
            }
        }
        return Ok(found);
    }
    if let Some(e) = last_error {
        return Err(Unavailable::Other(e));
    }
    if unreachable.is_empty() {
        Err(Unavailable::NotFound(String::new()))
    } else {
        let user = std::env::var(USER_VAR).unwrap_or_else(|_| DEFAULT_USER.into());
        Err(Unavailable::NotFound(format!(
            "where the script user `{user}` can run it (found only {}): install Python where that user can read it",
            unreachable.join(", ")
        )))
    }
}

/// Runs the interpreter (as Sluice, with a fixed program and no user input) to learn where it lives.
fn probe(candidate: &Path) -> Result<Found, String> {
    let fail = |why: String| format!("`{}` could not be started: {why}", candidate.display());
    let mut child = Command::new(candidate)
        .args(["-I", "-S", "-c", PROBE])
        .env_clear()
        .env("LC_ALL", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.by_ref().take(1 << 20).read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail("it did not answer in time".into()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let out = reader.join().unwrap_or_default();
    let answer: Json = serde_json::from_slice(&out)
        .map_err(|_| fail("it is not a Python 3 interpreter".into()))?;
    let text = |v: &Json| v.as_str().filter(|s| !s.is_empty()).map(PathBuf::from);
    let executable = answer
        .get("executable")
        .and_then(text)
        .ok_or_else(|| fail("it does not say where its executable is".into()))?;
    let executable = executable.canonicalize().unwrap_or(executable);
    let list = |key: &str| -> Vec<PathBuf> {
        answer
            .get(key)
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default()
    };
    Ok(Found {
        executable,
        prefixes: list("prefixes"),
        path: list("path"),
    })
}

/// Whether `uid`/`gid` (no supplementary groups) can reach and execute `path`: every folder on the way
/// searchable, the file readable and executable. ACLs are not read; a miss then shows when the worker
/// fails to start.
fn reachable(path: &Path, uid: u32, gid: u32) -> bool {
    let allows = |meta: &std::fs::Metadata, bits: u32| {
        let shift = if meta.uid() == uid {
            6
        } else if meta.gid() == gid {
            3
        } else {
            0
        };
        (meta.mode() >> shift) & bits == bits
    };
    let Ok(real) = path.canonicalize() else {
        return false;
    };
    for p in [path, real.as_path()] {
        for dir in p.ancestors().skip(1) {
            if dir.as_os_str().is_empty() {
                continue;
            }
            match std::fs::metadata(dir) {
                Ok(m) if allows(&m, 0o1) => {}
                _ => return false,
            }
        }
    }
    std::fs::metadata(&real).is_ok_and(|m| allows(&m, 0o5))
}

/// System folders and files the interpreter reads while it starts (shared libraries, locale, time
/// zones). Nothing of Sluice's should live under them.
const SYSTEM_READABLE: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/usr/share/zoneinfo",
    "/usr/share/locale/locale.alias",
];

// Landlock's interface (linux/landlock.h), which the libc crate does not describe.
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;
const FS_EXECUTE: u64 = 1 << 0;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of the running kernel; 0 without Landlock.
pub(crate) fn landlock_abi() -> i64 {
    // SAFETY: with a null attribute and the version flag, the call only reports the version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// A ruleset that handles every access the kernel knows (so all are refused but those granted): reading
/// and executing under `readable` only; no TCP, no abstract sockets or signals beyond the process.
fn landlock_ruleset(readable: &[PathBuf]) -> Result<Option<OwnedFd>, String> {
    let abi = landlock_abi();
    if abi < 1 {
        return Ok(None);
    }
    let mut fs: u64 = (1 << 13) - 1;
    if abi >= 2 {
        fs |= 1 << 13; // REFER
    }
    if abi >= 3 {
        fs |= 1 << 14; // TRUNCATE
    }
    if abi >= 5 {
        fs |= 1 << 15; // IOCTL_DEV
    }
    let attr = RulesetAttr {
        handled_access_fs: fs,
        handled_access_net: if abi >= 4 { 0b11 } else { 0 },
        scoped: if abi >= 6 { 0b11 } else { 0 },
    };
    let size: usize = if abi >= 6 {
        24
    } else if abi >= 4 {
        16
    } else {
        8
    };
    // SAFETY: the attribute is valid for `size` bytes.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    if fd < 0 {
        return Err(format!(
            "Landlock refused a ruleset: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    for path in readable {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: a plain open of a NUL-terminated path.
        let raw = unsafe { libc::open(cpath.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if raw < 0 {
            continue;
        }
        // SAFETY: a descriptor just opened and owned here.
        let opened = unsafe { OwnedFd::from_raw_fd(raw) };
        let access = if meta.is_dir() {
            FS_READ_FILE | FS_READ_DIR | FS_EXECUTE
        } else {
            FS_READ_FILE | FS_EXECUTE
        };
        let rule = PathBeneathAttr {
            allowed_access: access,
            parent_fd: opened.as_raw_fd(),
        };
        // SAFETY: both descriptors are open; the rule is valid for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                LANDLOCK_RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        if rc != 0 {
            return Err(format!(
                "Landlock refused a rule for {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(Some(ruleset))
}

/// The seccomp program for an interpreter whose path is at address `exe`, and where the process's own id
/// goes in it.
#[cfg(target_arch = "x86_64")]
fn seccomp_program(exe: u64) -> (Vec<libc::sock_filter>, Vec<usize>) {
    seccomp::program(exe)
}

#[cfg(not(target_arch = "x86_64"))]
fn seccomp_program(_exe: u64) -> (Vec<libc::sock_filter>, Vec<usize>) {
    (Vec::new(), Vec::new())
}

#[cfg(target_arch = "x86_64")]
mod seccomp {
    //! The seccomp program: a classic BPF filter over the system call number and arguments, built with
    //! symbolic labels. Everything not listed is allowed (the interpreter's ordinary work: reading,
    //! memory, time); x32 calls (which would dodge the numbers below) and other architectures are not.

    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const RET_ALLOW: u32 = 0x7FFF_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;

    const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGT: u16 = 0x25;
    const JGE: u16 = 0x35;
    const JSET: u16 = 0x45;
    const RET: u16 = 0x06; // BPF_RET | BPF_K

    // Offsets in `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    fn arg_lo(i: u32) -> u32 {
        16 + 8 * i
    }
    fn arg_hi(i: u32) -> u32 {
        20 + 8 * i
    }

    /// Open flags that write or create. `O_TMPFILE` includes `O_DIRECTORY`, which reading a folder
    /// uses: only its own bit counts.
    const WRITE_FLAGS: u32 = (libc::O_WRONLY
        | libc::O_RDWR
        | libc::O_CREAT
        | libc::O_TRUNC
        | libc::O_APPEND
        | (libc::O_TMPFILE & !libc::O_DIRECTORY)) as u32;

    /// Refused whatever their arguments.
    const DENIED: &[libc::c_long] = &[
        // threads and processes
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_execveat,
        // the network, and descriptors that could carry data or signals
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_pipe,
        libc::SYS_pipe2,
        libc::SYS_memfd_create,
        libc::SYS_memfd_secret,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // files: create, change, remove
        libc::SYS_creat,
        libc::SYS_openat2,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_mkdir,
        libc::SYS_mkdirat,
        libc::SYS_mknod,
        libc::SYS_mknodat,
        libc::SYS_rmdir,
        libc::SYS_unlink,
        libc::SYS_unlinkat,
        libc::SYS_rename,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_link,
        libc::SYS_linkat,
        libc::SYS_symlink,
        libc::SYS_symlinkat,
        libc::SYS_chmod,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_fchmodat2,
        libc::SYS_chown,
        libc::SYS_fchown,
        libc::SYS_lchown,
        libc::SYS_fchownat,
        libc::SYS_truncate,
        libc::SYS_ftruncate,
        libc::SYS_fallocate,
        libc::SYS_utime,
        libc::SYS_utimes,
        libc::SYS_utimensat,
        libc::SYS_futimesat,
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_removexattr,
        libc::SYS_lremovexattr,
        libc::SYS_fremovexattr,
        libc::SYS_sendfile,
        libc::SYS_splice,
        libc::SYS_tee,
        libc::SYS_vmsplice,
        libc::SYS_copy_file_range,
        // other processes, and signals sent to itself by timers
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_getfd,
        libc::SYS_pidfd_send_signal,
        libc::SYS_rt_sigqueueinfo,
        libc::SYS_rt_tgsigqueueinfo,
        libc::SYS_setitimer,
        libc::SYS_alarm,
        libc::SYS_timer_create,
        libc::SYS_timerfd_create,
        // the process's own settings and the system's
        libc::SYS_prctl,
        libc::SYS_personality,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_acct,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_syslog,
        libc::SYS_quotactl,
        libc::SYS_fanotify_init,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
    ];

    #[derive(Clone, Copy)]
    enum To {
        Next,
        L(usize),
    }

    /// A BPF program with forward jumps to labels.
    #[derive(Default)]
    struct Asm {
        ins: Vec<(u16, u32, To, To)>,
        labels: Vec<Option<usize>>,
        pid_slots: Vec<usize>,
    }

    impl Asm {
        fn label(&mut self) -> usize {
            self.labels.push(None);
            self.labels.len() - 1
        }
        fn bind(&mut self, l: usize) {
            self.labels[l] = Some(self.ins.len());
        }
        fn ld(&mut self, offset: u32) {
            self.ins.push((LD_ABS, offset, To::Next, To::Next));
        }
        fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
            self.ins.push((code, k, jt, jf));
        }
        /// Jumps to `on_other` unless A holds the process's own id.
        fn jeq_self_pid(&mut self, on_other: To) {
            self.pid_slots.push(self.ins.len());
            self.ins.push((JEQ, 0, To::Next, on_other));
        }
        fn ret(&mut self, k: u32) {
            self.ins.push((RET, k, To::Next, To::Next));
        }
        fn finish(self) -> (Vec<libc::sock_filter>, Vec<usize>) {
            let at = |i: usize, to: To| -> u8 {
                match to {
                    To::Next => 0,
                    To::L(l) => {
                        let target = self.labels[l].expect("every label is bound");
                        u8::try_from(target - i - 1).expect("jumps stay within 255 instructions")
                    }
                }
            };
            let program = self
                .ins
                .iter()
                .enumerate()
                .map(|(i, &(code, k, jt, jf))| libc::sock_filter {
                    code,
                    jt: at(i, jt),
                    jf: at(i, jf),
                    k,
                })
                .collect();
            (program, self.pid_slots)
        }
    }

    pub(super) fn program(exe: u64) -> (Vec<libc::sock_filter>, Vec<usize>) {
        let mut a = Asm::default();
        let allow = a.label();
        let deny = a.label();
        let kill = a.label();
        let open_flags_arg1 = a.label();
        let open_flags_arg2 = a.label();
        let write_fd = a.label();
        let execve = a.label();
        let sigaction = a.label();
        let signal_arg1 = a.label();
        let signal_arg2 = a.label();
        let fcntl = a.label();
        let nr = |n: libc::c_long| n as u32;

        a.ld(ARCH);
        a.jump(JEQ, AUDIT_ARCH_X86_64, To::Next, To::L(kill));
        a.ld(NR);
        a.jump(JGE, X32_SYSCALL_BIT, To::L(deny), To::Next);
        for &n in DENIED {
            a.jump(JEQ, nr(n), To::L(deny), To::Next);
        }
        a.jump(JEQ, nr(libc::SYS_open), To::L(open_flags_arg1), To::Next);
        a.jump(JEQ, nr(libc::SYS_openat), To::L(open_flags_arg2), To::Next);
        for n in [
            libc::SYS_write,
            libc::SYS_pwrite64,
            libc::SYS_writev,
            libc::SYS_pwritev,
            libc::SYS_pwritev2,
        ] {
            a.jump(JEQ, nr(n), To::L(write_fd), To::Next);
        }
        a.jump(JEQ, nr(libc::SYS_execve), To::L(execve), To::Next);
        a.jump(JEQ, nr(libc::SYS_rt_sigaction), To::L(sigaction), To::Next);
        a.jump(JEQ, nr(libc::SYS_kill), To::L(signal_arg1), To::Next);
        a.jump(JEQ, nr(libc::SYS_tkill), To::L(signal_arg1), To::Next);
        a.jump(JEQ, nr(libc::SYS_tgkill), To::L(signal_arg2), To::Next);
        a.jump(JEQ, nr(libc::SYS_fcntl), To::L(fcntl), To::Next);
        a.ret(RET_ALLOW);

        // open(path, flags) and openat(dir, path, flags): reading only.
        a.bind(open_flags_arg1);
        a.ld(arg_lo(1));
        a.jump(JSET, WRITE_FLAGS, To::L(deny), To::L(allow));
        a.bind(open_flags_arg2);
        a.ld(arg_lo(2));
        a.jump(JSET, WRITE_FLAGS, To::L(deny), To::L(allow));

        // Writes go to stdin, stdout or stderr only.
        a.bind(write_fd);
        a.ld(arg_lo(0));
        a.jump(JGT, 2, To::L(deny), To::L(allow));

        // The one execve that starts the interpreter, recognised by the address of its path.
        a.bind(execve);
        a.ld(arg_lo(0));
        a.jump(JEQ, exe as u32, To::Next, To::L(deny));
        a.ld(arg_hi(0));
        a.jump(JEQ, (exe >> 32) as u32, To::L(allow), To::L(deny));

        // Signal handlers only where the interpreter sets its own while it starts (and queries): a
        // handler of the script's would be called with the interpreter's current frame.
        a.bind(sigaction);
        a.ld(arg_lo(0));
        for sig in [libc::SIGINT, libc::SIGPIPE, libc::SIGXFSZ] {
            a.jump(JEQ, sig as u32, To::L(allow), To::Next);
        }
        a.ld(arg_lo(1));
        a.jump(JEQ, 0, To::Next, To::L(deny));
        a.ld(arg_hi(1));
        a.jump(JEQ, 0, To::L(allow), To::L(deny));

        // kill(pid, sig), tkill(tid, sig), tgkill(pid, tid, sig): only itself, only to end (abort(),
        // a kill) or to probe.
        let signal_check = a.label();
        a.bind(signal_arg1);
        a.ld(arg_lo(0));
        a.jeq_self_pid(To::L(deny));
        a.ld(arg_lo(1));
        // Either way to the check of the signal (an unconditional jump).
        a.jump(JEQ, 0, To::L(signal_check), To::L(signal_check));
        a.bind(signal_arg2);
        a.ld(arg_lo(0));
        a.jeq_self_pid(To::L(deny));
        a.ld(arg_lo(2));
        a.bind(signal_check);
        for sig in [0, libc::SIGABRT, libc::SIGKILL] {
            a.jump(JEQ, sig as u32, To::L(allow), To::Next);
        }
        a.ret(RET_ERRNO | libc::EPERM as u32);

        // fcntl: no signal on I/O readiness (F_SETSIG picks any signal, F_SETOWN a target).
        a.bind(fcntl);
        a.ld(arg_lo(1));
        // F_SETSIG and F_SETOWN_EX (linux/fcntl.h), which the libc crate does not name.
        for cmd in [10, libc::F_SETOWN, 15] {
            a.jump(JEQ, cmd as u32, To::L(deny), To::Next);
        }
        a.ret(RET_ALLOW);

        a.bind(allow);
        a.ret(RET_ALLOW);
        a.bind(deny);
        a.ret(RET_ERRNO | libc::EPERM as u32);
        a.bind(kill);
        a.ret(RET_KILL_PROCESS);
        a.finish()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_program_fits_and_every_jump_lands_inside_it() {
            let (p, pid_slots) = super::program(0x1234_5678_9abc);
            assert!(p.len() < 4096);
            assert_eq!(pid_slots.len(), 2);
            assert!(pid_slots.iter().all(|&i| p[i].code == super::JEQ));
            for (i, ins) in p.iter().enumerate() {
                assert!(i + 1 + (ins.jt as usize) < p.len() + 1);
                assert!(i + 1 + (ins.jf as usize) < p.len() + 1);
            }
            assert_eq!(p.last().unwrap().code, super::RET);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The operating-system layers on their own: a plain interpreter, without the worker's audit hook or
    //! its limit on descriptors, tries each way out directly. What stops it here is the user switch,
    //! Landlock and seccomp alone.

    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Stdio;

    use super::*;

    /// Tries each escape; prints one JSON object: attempt → "ALLOWED …" or "refused <type>: <message>".
    const ESCAPES: &str = r#"
import sys, json
import _io, _thread, posix, _signal
data, marker = sys.stdin.read().split("\n")[:2]
results = {}
def attempt(name, f):
    try:
        r = f()
        results[name] = "ALLOWED " + repr(r)[:300]
    except BaseException as e:
        results[name] = "refused %s: %s" % (type(e).__name__, str(e)[:300])
attempt("read the secret", lambda: _io.open(data + "/secret.key").read())
attempt("stat the secret", lambda: posix.stat(data + "/secret.key").st_size)
attempt("list the data directory", lambda: posix.listdir(data))
attempt("read /proc/self/environ", lambda: _io.open("/proc/self/environ", "rb").read())
attempt("read /etc/passwd", lambda: _io.open("/etc/passwd").read())
attempt("create a file", lambda: _io.open(marker, "w"))
attempt("make a directory", lambda: posix.mkdir(marker))
attempt("start a thread", lambda: _thread.start_new_thread(lambda: None, ()))
attempt("fork", lambda: posix.fork())
attempt("execute a program", lambda: posix.execv("/bin/sh", ["sh", "-c", "true"]))
attempt("open a socket", lambda: __import__("_socket").socket())
attempt("make a pipe", lambda: posix.pipe())
attempt("install a signal handler", lambda: _signal.signal(_signal.SIGALRM, lambda *a: None))
attempt("arm a timer", lambda: _signal.setitimer(_signal.ITIMER_REAL, 10))
attempt("send itself SIGINT", lambda: _signal.raise_signal(_signal.SIGINT))
attempt("signal its parent", lambda: posix.kill(posix.getppid(), 0))
attempt("write to a descriptor beyond 2", lambda: posix.write(7, b"x"))
sys.stdout.write(json.dumps({"uid": posix.getuid(), "results": results}))
"#;

    /// Every attempt must be refused by the operating system (`PermissionError`, or `OSError` for a
    /// descriptor that does not exist), never by Python's own checks.
    fn check_escapes(interpreter: &str) {
        let base = std::env::temp_dir().join(format!(
            "sluice-sandbox-{}-{}",
            std::process::id(),
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() }
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = base.join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let secret = format!("SECRET-{}-{:?}", std::process::id(), Instant::now());
        std::fs::write(data.join("secret.key"), &secret).unwrap();
        // World-writable, so that only the sandbox can stop the worker from creating it.
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let marker = open.join("escaped");

        let sandbox = Sandbox::get(interpreter).unwrap_or_else(|e| panic!("{e:?}"));
        let mut child = sandbox
            .command(&["-I", "-S", "-c", ESCAPES], 256 << 20)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let input = format!("{}\n{}\n", data.display(), marker.display());
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stdout.contains(&secret) && !stderr.contains(&secret));
        let answer: Json = serde_json::from_str(&stdout)
            .unwrap_or_else(|_| panic!("no answer ({}): {stderr}", out.status));
        let results = answer["results"].as_object().unwrap();
        assert_eq!(results.len(), 17, "{answer}");
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        for (attempt, outcome) in results {
            let outcome = outcome.as_str().unwrap();
            if attempt == "stat the secret" && !root {
                // Landlock does not cover metadata: a worker of Sluice's own user may stat a file it
                // cannot open (SECURITY.md says so).
                continue;
            }
            assert!(
                outcome.starts_with("refused PermissionError")
                    || outcome.contains("[Errno 1] Operation not permitted")
                    || (attempt.contains("beyond 2") && outcome.starts_with("refused OSError"))
                    || outcome.starts_with("refused RuntimeError: can't start new thread"),
                "{attempt}: {outcome}"
            );
        }
        eprintln!("{answer:#}");
        assert!(!marker.exists(), "the sandboxed interpreter created a file");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let (uid, _) = script_user().unwrap().unwrap();
            assert_eq!(answer["uid"], uid, "{answer}");
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn the_operating_system_layers_hold_without_the_audit_hook() {
        assert!(
            landlock_abi() >= 1,
            "these tests expect a kernel with Landlock"
        );
        check_escapes(super::super::DEFAULT_INTERPRETER);
    }

    /// As root, the same attempts from a process of an unprivileged user (Sluice run as a normal user):
    /// the worker keeps that user, so the data directory's permissions do not stop it; Landlock does.
    #[test]
    fn a_normal_user_s_workers_are_confined_too() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // Run by the root test below, as that user.
            check_escapes(super::super::DEFAULT_INTERPRETER);
            return;
        }
        let (uid, gid) = lookup_user(DEFAULT_USER).expect("the user nobody exists");
        // A copy of this test program where that user can run it.
        let dir = std::env::temp_dir().join(format!("sluice-sandbox-bin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.join("tests");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test of this binary forking between the copy and the exec holds the copy's write
        // descriptor until its child execs: the kernel then refuses to run the file for a moment
        // ("text file busy"), so the exec is tried again.
        let mut attempts = 0;
        let out = loop {
            let run = Command::new(&exe)
                .args([
                    "--exact",
                    "python::sandbox::tests::a_normal_user_s_workers_are_confined_too",
                    "--nocapture",
                ])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .current_dir("/")
                .uid(uid)
                .gid(gid)
                .output();
            match run {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other.unwrap(),
            }
        };
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
    }
}
