fn main() -> std::process::ExitCode {
    fgw::cli::main()
}
