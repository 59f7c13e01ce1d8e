/// The NFSSR driver: its issue is not done yet, so every verb answers ENOSYS "not implemented yet".
public struct NFSSR: Driver {
    public static let name = "NFSSR"

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {}
}
