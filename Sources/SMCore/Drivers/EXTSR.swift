/// The EXTSR driver: its issue is not done yet, so every verb answers ENOSYS "not implemented yet".
public struct EXTSR: Driver {
    public static let name = "EXTSR"

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {}
}
