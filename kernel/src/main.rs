//! The `lifelong` binary: everything is in the library; see `cli.rs`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    kernel::cli::main()
}
