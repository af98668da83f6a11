fn main() -> std::process::ExitCode {
    climc::main()
}
