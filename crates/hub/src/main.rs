//! The `hub` binary: the command line over the `fgw_hub` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
