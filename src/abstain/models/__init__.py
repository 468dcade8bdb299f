"""Plain nn.Modules with a frozen dataclass config each."""
