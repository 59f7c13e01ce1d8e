/// The ISCSISR driver: its issue is not done yet, so every verb answers ENOSYS "not implemented yet".
public struct ISCSISR: Driver {
    public static let name = "ISCSISR"

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {}
}
