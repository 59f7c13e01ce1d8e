/// FileSR: VDIs as VHD files in `<location>/<SR-UUID>/` on a local directory.
public struct FileSR: Driver {
    public static let name = "FileSR"
    public static let requiredKeys = ["location"]
    public static let overview = "FileSR keeps each VDI as a dynamic VHD file <location>/<SR-UUID>/<VDI-UUID>.vhd."

    let location: String
    let host: HostEnvironment

    public init(configuration: DeviceConfiguration, host: HostEnvironment) throws {
        location = try configuration.required("location")
        self.host = host
    }
}
