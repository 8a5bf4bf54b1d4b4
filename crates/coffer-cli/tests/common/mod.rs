//! Shared harness: run the CLI in-process with captured streams and an explicit environment.

#![allow(dead_code)]

use std::ffi::OsString;

use coffer_cli::{run_with, Environment, Streams};

/// Outcome of one CLI invocation.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `coffer <args>` with `env` and `stdin`, capturing output.
pub fn coffer(env: &Environment, args: &[&str], stdin: &str) -> Outcome {
    let mut argv: Vec<OsString> = vec!["coffer".into()];
    argv.extend(args.iter().map(OsString::from));
    let mut input = stdin.as_bytes();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = run_with(
        argv,
        env,
        Streams {
            stdin: &mut input,
            stdout: &mut stdout,
            stderr: &mut stderr,
            stdout_is_terminal: false,
            stdin_is_terminal: false,
        },
    );
    Outcome {
        code,
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}
