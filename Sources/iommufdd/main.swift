import IommufdDaemon

// The command's definitions live in IommufdDaemon (IommufddCommand), where iommufdd(8) is
// generated from them too.
IommufddCommand.main()
