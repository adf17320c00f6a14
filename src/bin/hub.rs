fn main() -> std::process::ExitCode {
    fgw::hub::cli::main()
}
