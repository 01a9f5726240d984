"""The machine a run is on: devices, processes (distributed), seeds, atomic files, read-ahead,
data-feeding estimates and the output folder's layout. The bottom room: it imports no other room."""
