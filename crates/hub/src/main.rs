fn main() -> std::process::ExitCode {
    fgw_hub::cli::main()
}
