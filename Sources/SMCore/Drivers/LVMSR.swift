/// The LVMSR driver: its issue is not done yet, so every verb answers ENOSYS "not implemented yet".
public struct LVMSR: Driver {
    public static let name = "LVMSR"

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {}
}
