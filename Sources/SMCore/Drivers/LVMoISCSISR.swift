/// The LVMoISCSISR driver: its issue is not done yet, so every verb answers ENOSYS "not implemented yet".
public struct LVMoISCSISR: Driver {
    public static let name = "LVMoISCSISR"

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {}
}
