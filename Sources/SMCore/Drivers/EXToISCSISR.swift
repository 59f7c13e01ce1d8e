/// The EXToISCSISR driver: its issue is not done yet, so every verb answers ENOSYS "not implemented yet".
public struct EXToISCSISR: Driver {
    public static let name = "EXToISCSISR"

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {}
}
