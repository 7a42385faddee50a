$parts = string.split( http.getPath(), "/" );
array.push( $seen, $parts[1] );
