//! `gateway`: the appliance daemon and its operator commands (see [`cli`]).

mod cli;

fn main() -> std::process::ExitCode {
    // Before anything can panic: panic messages may quote patient data, so only the
    // location is ever printed.
    fgw_gateway::logging::install_panic_hook();
    cli::run()
}
