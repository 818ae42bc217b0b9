import IommufdDaemon
print("iommufdd: not yet wired")
