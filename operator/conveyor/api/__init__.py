"""Conveyor's API: typed models of the custom resources, one package per version."""
