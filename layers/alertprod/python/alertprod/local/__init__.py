"""The embedded AWS stack: moto's server, resources created from the SAM template, a local Lambda runner."""
