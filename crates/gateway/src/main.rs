fn main() -> std::process::ExitCode {
    fgw_gateway::cli::main()
}
