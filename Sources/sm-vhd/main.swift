// sm-vhd: the VHD engine from the command line; the command line is the VHDCommand module.
import VHDCommand

VHDCommandMain.run()
